//! `gridflow bench --quick`: every scenario runs at tiny sizes, writes its CSV, its plots and its
//! section of the document, keeps the hand-written rest of the document, and reports figures
//! that hold whatever the code (a dashboard row changes with every region row; the live rows
//! never exceed the rows read).

use std::process::Command;

use crate::common::scratch_dir;

/// The CSV at `path`: header and rows.
fn read_csv(path: &std::path::Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

fn column<'a>(header: &[String], rows: &'a [Vec<String>], name: &str) -> Vec<&'a str> {
    let i = header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    rows.iter().map(|row| row[i].as_str()).collect()
}

#[test]
fn the_quick_bench_runs_every_scenario_and_regenerates_the_document() {
    let dir = scratch_dir("bench_quick");
    let doc = dir.join("benchmarks.md");
    std::fs::write(
        &doc,
        "# Benchmarks\n\n## Earlier measurements\n\nkept as written\n",
    )
    .unwrap();
    let out = dir.join("results");
    let output = Command::new(env!("CARGO_BIN_EXE_gridflow"))
        .args(["bench", "--quick", "--out"])
        .arg(&out)
        .arg("--doc")
        .arg(&doc)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");

    let text = std::fs::read_to_string(&doc).unwrap();
    assert!(
        text.starts_with("# Benchmarks\n\n<!-- bench:begin"),
        "{text}"
    );
    assert!(
        text.contains("## Earlier measurements\n\nkept as written"),
        "{text}"
    );
    for scenario in [
        "throughput",
        "latency",
        "correction",
        "memory",
        "window",
        "batch",
    ] {
        let begin = format!("<!-- bench:{scenario}:begin -->");
        let end = format!("<!-- bench:{scenario}:end -->");
        let section = text
            .split_once(&begin)
            .and_then(|(_, rest)| rest.split_once(&end))
            .unwrap_or_else(|| panic!("no {scenario} section in {text}"))
            .0;
        assert!(section.contains("QUICK MODE"), "{section}");
        assert!(
            section.contains("| --- |") || section.contains("|---|"),
            "no table: {section}"
        );
        // Every plot the section links exists and is an SVG.
        let plots: Vec<&str> = section
            .split("](benchmarks/")
            .skip(1)
            .map(|rest| rest.split(')').next().unwrap())
            .collect();
        assert!(!plots.is_empty(), "{scenario} has no plot");
        for plot in plots {
            let svg = std::fs::read_to_string(dir.join("benchmarks").join(plot)).unwrap();
            assert!(svg.starts_with("<svg"), "{plot} is not an SVG");
        }
        let (header, rows) = read_csv(&out.join(format!("{scenario}.csv")));
        assert!(!rows.is_empty(), "{scenario}.csv has no rows");
        for machine_column in ["cores", "cpu_model", "commit", "date"] {
            assert!(header.iter().any(|h| h == machine_column), "{header:?}");
        }
    }

    // Throughput: every run read its 20,000 rows (both processes together for -n 2).
    let (header, rows) = read_csv(&out.join("throughput.csv"));
    assert_eq!(rows.len(), 6, "2 inputs × 3 layouts × 1 run");
    for rate in column(&header, &rows, "rows_per_s") {
        assert!(rate.parse::<f64>().unwrap() > 0.0, "{rate}");
    }

    // The correction: moving a user with readings changes region rows (a dashboard row each,
    // and more where only the top user changes) and rankings.
    let (header, rows) = read_csv(&out.join("correction.csv"));
    let changes = |name: &str| -> u64 {
        column(&header, &rows, name)
            .iter()
            .map(|n| n.parse::<u64>().unwrap())
            .sum()
    };
    assert_eq!(rows.len(), 5, "five corrections of one run");
    let (regions, rankings, dashboards) = (
        changes("dws_region_changes"),
        changes("dws_ranking_changes"),
        changes("ads_changes"),
    );
    assert!(regions > 0 && rankings > 0, "{regions} {rankings}");
    assert!(
        dashboards >= regions,
        "{dashboards} dashboard changes, {regions} region changes"
    );
    assert_eq!(changes("output_changes"), regions + rankings + dashboards);

    // Memory: the live rows never exceed the rows read.
    let (header, rows) = read_csv(&out.join("memory.csv"));
    let read = column(&header, &rows, "consumption_rows");
    let live = column(&header, &rows, "live_rows");
    for (read, live) in read.iter().zip(&live) {
        assert!(live.parse::<u64>().unwrap() <= read.parse::<u64>().unwrap());
    }
    assert!(live.iter().any(|l| *l != "0"), "no sample saw live rows");

    // Latency: each rate's CCDF falls to 0 at its largest latency.
    let (header, rows) = read_csv(&out.join("latency-ccdf.csv"));
    let fractions = column(&header, &rows, "fraction_above");
    assert_eq!(
        fractions.last().map(|f| f.parse::<f64>().unwrap()),
        Some(0.0)
    );
}
