//! Scenario (a), throughput: consumption rows/s through all four layers on the simulated clock,
//! 1M and 10M rows, 1 and 2 worker threads and 2 processes of one worker on localhost; the
//! source's DataGen (1,000 users inserted once, no retention) and the default generator (user
//! updates, `--retention 3h`).

use super::child::{self, arg, Measured};
use super::plot::{Axis, Chart, Series};
use super::scenario::{Bench, Csv, Plot, Scenario, Section};
use super::stats::Spread;

/// How the job's work is laid out.
#[derive(Clone, Copy, Debug)]
struct Layout {
    name: &'static str,
    workers: usize,
    processes: usize,
}

const LAYOUTS: [Layout; 3] = [
    Layout {
        name: "1 worker",
        workers: 1,
        processes: 1,
    },
    Layout {
        name: "2 workers",
        workers: 2,
        processes: 1,
    },
    Layout {
        name: "2 processes",
        workers: 1,
        processes: 2,
    },
];

/// The input: the DataGen, or the default generator with user updates and retention.
const INPUTS: [(&str, &[&str]); 2] = [
    ("no user updates", &["--no-user-updates"]),
    ("user updates, --retention 3h", &["--retention", "3h"]),
];

/// The target of issue 10 and SPEC §7.
const TARGET_ROWS_PER_SECOND: f64 = 1_000_000.0;

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let sizes: Vec<u64> = bench.size(vec![1_000_000, 10_000_000], vec![20_000]);
    let configurations = sizes.len() * INPUTS.len() * LAYOUTS.len();
    let progress = bench.progress(Scenario::Throughput, configurations * bench.runs);
    let mut csv = Csv {
        header: [
            "rows",
            "input",
            "layout",
            "workers",
            "processes",
            "run",
            "elapsed_s",
            "rows_per_s",
            "peak_memory_bytes",
        ]
        .to_vec(),
        rows: Vec::new(),
    };
    let mut table = String::from(
        "| rows | input | layout | consumption rows/s | peak memory (MiB, all processes) |\n|---|---|---|---|---|\n",
    );
    let mut series: Vec<Series> = Vec::new();
    for (input, input_args) in INPUTS {
        for layout in LAYOUTS {
            let mut points = Vec::new();
            for &rows in &sizes {
                let mut rates = Vec::new();
                let mut memory = Vec::new();
                for run in 0..bench.runs {
                    progress.set_message(format!("{rows} rows, {input}, {}", layout.name));
                    let mut args = vec![
                        arg("--clock"),
                        arg("simulated"),
                        arg("--consumptions"),
                        arg(rows),
                        arg("-w"),
                        arg(layout.workers),
                    ];
                    args.extend(input_args.iter().map(arg));
                    let name = format!(
                        "throughput-{rows}-{}-{}-{run}",
                        slug(input),
                        slug(layout.name)
                    );
                    let measured: Measured = child::run(bench, &name, &args, layout.processes)?;
                    rates.push(measured.rows_per_second());
                    memory.push(measured.peak_memory_bytes as f64);
                    let row = vec![
                        arg(rows),
                        arg(input),
                        arg(layout.name),
                        arg(layout.workers),
                        arg(layout.processes),
                        arg(run),
                        format!("{:.3}", measured.elapsed_s),
                        format!("{:.0}", measured.rows_per_second()),
                        arg(measured.peak_memory_bytes),
                    ];
                    csv.rows.push(row);
                    progress.inc(1);
                }
                let rate = Spread::of(&rates).expect("at least one run");
                let mib = Spread::of(&memory)
                    .expect("at least one run")
                    .map(|b| b / (1024.0 * 1024.0));
                table.push_str(&format!(
                    "| {} | {input} | {} | {} | {} |\n",
                    super::stats::group_thousands(&rows.to_string()),
                    layout.name,
                    rate.show(0),
                    mib.show(0)
                ));
                points.push((rows as f64, rate.median));
            }
            series.push(Series {
                name: format!("{input}, {}", layout.name),
                points,
            });
        }
    }
    progress.finish_and_clear();
    let best_no_updates = csv
        .rows
        .iter()
        .filter(|row| row[1] == INPUTS[0].0 && row[2] == LAYOUTS[1].name)
        .filter_map(|row| row[7].parse::<f64>().ok())
        .collect::<Vec<_>>();
    let target = Spread::of(&best_no_updates).map_or(String::new(), |spread| {
        format!(
            "Target: ≥ 1,000,000 consumption rows/s on 2 workers without user updates. Measured \
             (all sizes): {} rows/s, {:.2}× the target.\n\n",
            spread.show(0),
            spread.median / TARGET_ROWS_PER_SECOND
        )
    });
    let markdown = format!(
        "### (a) Throughput\n\n\
         `gridflow run --clock simulated --consumptions N -w W [-n 2] --sink none --ephemeral \
         --no-ui` and the input's options, {} of each; rows/s is consumption rows over the \
         time from the dataflow's start to its last output (the slowest process's). The web UI is \
         off: its cost is measured apart (below, issue 9).\n\n{target}{table}",
        bench.runs_phrase()
    );
    let chart = Chart {
        title: "Throughput: consumption rows/s, simulated clock",
        x_label: "consumption rows",
        y_label: "rows/s",
        x_axis: Axis::Log,
        y_axis: Axis::Log,
    };
    Ok(Section {
        scenario: Scenario::Throughput,
        csvs: vec![("throughput".into(), csv)],
        markdown,
        plots: vec![Plot {
            file: "throughput.svg".into(),
            title: "Throughput against input size".into(),
            svg: chart.svg(&series)?,
        }],
    })
}

/// `user updates, --retention 3h` as `user-updates-retention-3h`.
pub fn slug(text: &str) -> String {
    let mut slug = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_string()
}
