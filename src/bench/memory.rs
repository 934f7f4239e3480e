//! Scenario (d), memory: resident memory and bytes per live consumption row over a long run on
//! the simulated clock (3M rows: about a week of source time at the default rates), with
//! `--retention 3h` and without (then with the source's DataGen, users inserted once). Live rows are the consumption rows the maintained ODS state
//! holds (the `ods_consumption_live` gauge); the resident memory includes the process's fixed
//! part (code, thread stacks, allocator pools), so bytes per live row is an upper bound.

use super::child::{self, arg};
use super::plot::{Axis, Chart, Series};
use super::scenario::{Bench, Csv, Plot, Scenario, Section};
use super::stats::Spread;
use crate::metrics::report::Sample;

/// With retention, the default generator (user updates and all). Without retention, the
/// source's DataGen (users inserted once): without a horizon every user update re-joins all of
/// that user's history, so that run's cost grows with the square of its length (see "The
/// dimension churn is quadratic without retention" in docs/benchmarks.md) and says nothing
/// about memory per row.
const VARIANTS: [(&str, &[&str]); 2] = [
    ("--retention 3h", &["--retention", "3h"]),
    ("no retention, no user updates", &["--no-user-updates"]),
];

/// The target of issue 10.
const TARGET_BYTES_PER_ROW: f64 = 200.0;

const MIB: f64 = 1024.0 * 1024.0;

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let rows: u64 = bench.size(3_000_000, 20_000);
    let interval = bench.size("1s", "100ms");
    let progress = bench.progress(Scenario::Memory, VARIANTS.len() * bench.runs);
    let mut csv = Csv {
        header: [
            "variant",
            "run",
            "elapsed_s",
            "consumption_rows",
            "live_rows",
            "resident_bytes",
            "bytes_per_live_row",
        ]
        .to_vec(),
        rows: Vec::new(),
    };
    let mut table = String::from(
        "| variant | peak memory (MiB) | live rows at the end | resident at the end (MiB) | bytes per live row at the end | target |\n|---|---|---|---|---|---|\n",
    );
    let (mut resident_series, mut per_row_series) = (Vec::new(), Vec::new());
    for (variant, variant_args) in VARIANTS {
        let mut peaks = Vec::new();
        let mut ends: Vec<Sample> = Vec::new();
        let mut first_samples = Vec::new();
        for run in 0..bench.runs {
            progress.set_message(format!("{rows} rows, {variant}"));
            let mut args = vec![
                arg("--clock"),
                arg("simulated"),
                arg("--consumptions"),
                arg(rows),
                arg("-w"),
                arg(2),
                arg("--report-interval"),
                arg(interval),
            ];
            args.extend(variant_args.iter().map(arg));
            let name = format!("memory-{}-{run}", super::throughput::slug(variant));
            let measured = child::run(bench, &name, &args, 1)?;
            peaks.push(measured.peak_memory_bytes as f64);
            let samples = measured.first.samples.clone();
            for sample in &samples {
                let row = vec![
                    arg(variant),
                    arg(run),
                    format!("{:.3}", sample.elapsed_s),
                    arg(sample.consumption_rows),
                    arg(sample.live_rows),
                    arg(sample.resident_bytes),
                    format!("{:.1}", bytes_per_row(sample)),
                ];
                csv.rows.push(row);
            }
            // The last sample with rows held: when the input ends every window freezes and
            // the state empties.
            if let Some(end) = samples.iter().rev().find(|s| s.live_rows > 0) {
                ends.push(*end);
            }
            if run == 0 {
                first_samples = samples;
            }
            progress.inc(1);
        }
        let peak = Spread::of(&peaks)
            .expect("at least one run")
            .map(|b| b / MIB);
        let spread = |f: &dyn Fn(&Sample) -> f64| {
            Spread::of(&ends.iter().map(f).collect::<Vec<_>>())
                .map_or("–".to_string(), |s| s.show(0))
        };
        let per_row = Spread::of(&ends.iter().map(bytes_per_row).collect::<Vec<_>>());
        let verdict = per_row.map_or("–".to_string(), |s| {
            if s.median < TARGET_BYTES_PER_ROW {
                "< 200 B: met".to_string()
            } else {
                "< 200 B: **missed**".to_string()
            }
        });
        table.push_str(&format!(
            "| {variant} | {} | {} | {} | {} | {verdict} |\n",
            peak.show(0),
            spread(&|s| s.live_rows as f64),
            spread(&|s| s.resident_bytes as f64 / MIB),
            per_row.map_or("–".to_string(), |s| s.show(0)),
        ));
        resident_series.push(Series {
            name: variant.to_string(),
            points: first_samples
                .iter()
                .map(|s| (s.consumption_rows as f64, s.resident_bytes as f64 / MIB))
                .collect(),
        });
        per_row_series.push(Series {
            name: variant.to_string(),
            points: first_samples
                .iter()
                .filter(|s| s.live_rows > 0)
                .map(|s| (s.consumption_rows as f64, bytes_per_row(s)))
                .collect(),
        });
    }
    progress.finish_and_clear();
    let markdown = format!(
        "### (d) Memory\n\n\
         `gridflow run --clock simulated --consumptions {rows} -w 2 --report-interval {interval} \
         --sink none --ephemeral --no-ui`, with `--retention 3h`, and without retention on the source's DataGen input \
         (`--no-user-updates`: without a horizon user updates cost quadratically), {} of each. The \
         report samples the process's resident memory (`VmRSS`) and the live consumption rows \
         every {interval}; \"at the end\" is the last sample before the input ended (then every \
         window freezes and the state empties). Bytes per live row is resident memory over live \
         rows, the fixed part of the process included. The curves are of the first run.\n\n{table}",
        bench.runs_phrase()
    );
    let resident = Chart {
        title: "Resident memory as the input grows",
        x_label: "consumption rows read",
        y_label: "resident memory (MiB)",
        x_axis: Axis::Linear,
        y_axis: Axis::Linear,
    };
    let per_row = Chart {
        title: "Bytes of resident memory per live consumption row",
        x_label: "consumption rows read",
        y_label: "bytes per live row",
        x_axis: Axis::Linear,
        y_axis: Axis::Log,
    };
    Ok(Section {
        scenario: Scenario::Memory,
        csvs: vec![("memory".into(), csv)],
        markdown,
        plots: vec![
            Plot {
                file: "memory-resident.svg".into(),
                title: "Resident memory over a long run".into(),
                svg: resident.svg(&resident_series)?,
            },
            Plot {
                file: "memory-per-row.svg".into(),
                title: "Bytes per live consumption row".into(),
                svg: per_row.svg(&per_row_series)?,
            },
        ],
    })
}

fn bytes_per_row(sample: &Sample) -> f64 {
    if sample.live_rows == 0 {
        f64::NAN
    } else {
        sample.resident_bytes as f64 / sample.live_rows as f64
    }
}
