//! The web UI's two pages in a real browser: a finished job's pages, loaded in headless
//! Chromium, must show the numbers its API serves; screenshots of both are saved. A browser
//! that cannot start fails the test (the test command installs Debian's `chromium`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{ctrl_c, gridflow, scratch_dir};
use crate::ui::{get, ui_address};

/// The browser: `GRIDFLOW_CHROMIUM`, else `chromium` on the PATH.
fn chromium() -> String {
    std::env::var("GRIDFLOW_CHROMIUM").unwrap_or_else(|_| "chromium".to_string())
}

/// Headless Chromium on `url`, with the flags this machine's closed network needs; `extra`
/// says what to produce. Returns its standard output.
fn browse(profile: &Path, url: &str, extra: &[&str]) -> String {
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            // the page polls once a second: let it render a few times
            "--virtual-time-budget=6000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap_or_else(|error| panic!("cannot start {} ({error}): install chromium", chromium()));
    assert!(
        output.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The text of the first element of `dom` that carries `attribute` (e.g. `data-metric="x"`).
fn text_of<'a>(dom: &'a str, attribute: &str) -> &'a str {
    let at = dom
        .find(attribute)
        .unwrap_or_else(|| panic!("the page has no element with {attribute}"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest[start..].find('<').unwrap() + start;
    &rest[start..end]
}

/// The rendered integer of the element with `attribute` (thousands separators dropped).
fn integer_of(dom: &str, attribute: &str) -> u64 {
    let text = text_of(dom, attribute).replace(',', "");
    text.parse()
        .unwrap_or_else(|_| panic!("{attribute} shows {text:?}, not an integer"))
}

/// The `<tr …>` row of `dom` that starts with `row_attribute`, up to its end.
fn row_of<'a>(dom: &'a str, row_attribute: &str) -> &'a str {
    let at = dom
        .find(row_attribute)
        .unwrap_or_else(|| panic!("the page has no row {row_attribute}"));
    let end = dom[at..].find("</tr>").unwrap() + at;
    &dom[at..end]
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn json(base: &str, path: &str) -> Value {
    serde_json::from_str(&get(&format!("{base}{path}")).1).unwrap()
}

#[test]
fn both_pages_render_what_the_api_serves_in_a_real_browser() {
    let scratch = scratch_dir("browser");
    // A bounded job with late users and user updates at one-second logical times: its
    // dashboard has corrections. It ends, and its UI stays up with the final state.
    let mut child = gridflow(&scratch.join("state"))
        .env_remove("GRIDFLOW_NO_UI")
        .args(["run", "--status-interval", "0", "--clock", "simulated"])
        .args(["--consumptions", "20000", "--tick", "1s", "--seed", "7"])
        .args(["--ephemeral", "--sink", "none", "--ui-addr", "127.0.0.1:0"])
        .args(["--ui-linger", "300s"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (base, stderr) = ui_address(child.stderr.take().unwrap());
    let drain = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    while json(&base, "/api/job")["status"] != "FINISHED" {
        assert!(Instant::now() < deadline, "the job did not finish");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The dataflow's loggers publish their last sums as the workers end.
    std::thread::sleep(Duration::from_millis(300));
    let metrics = json(&base, "/api/metrics");
    let dashboard = json(&base, "/api/dashboard");
    let corrections = json(&base, "/api/corrections");
    let profile = scratch.join("chromium-profile");
    let shots = screenshot_dir();

    // The job page.
    let dom = browse(&profile, &format!("{base}/"), &["--dump-dom"]);
    assert!(
        !dom.contains("data-error"),
        "the page's script failed: {dom}"
    );
    assert!(
        dom.contains("data-rendered"),
        "the page never rendered: {dom}"
    );
    assert_eq!(text_of(&dom, "id=\"status\""), "FINISHED");
    for metric in [
        "ods_user_rows",
        "ods_consumption_rows",
        "dws_region_updates",
        "dws_ranking_updates",
        "ads_updates",
        "late_rows",
        "corrected_window_rows",
        "corrections",
    ] {
        let shown = integer_of(&dom, &format!("data-metric=\"{metric}\""));
        assert_eq!(Some(shown), metrics[metric].as_u64(), "{metric}");
    }
    assert_eq!(metrics["ods_consumption_rows"], 20000);
    // The dataflow graph names the warehouse's operators.
    for operator in ["ods.power_user", "dws.partitions", "ui.monitor"] {
        assert!(
            dom.contains(&format!("data-operator=\"{operator}\"")),
            "the graph has no {operator}"
        );
    }
    // Every operator on the graph is named after its layer and its role, in the source's
    // words (`dwd.dims`, `ads.dashboard`, …), as the API names them.
    let on_graph: Vec<&str> = dom
        .split("data-operator=\"")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    let layers = ["sources", "ods.", "dwd.", "dws.", "ads.", "sink.", "ui."];
    assert!(on_graph.len() >= 12, "{on_graph:?}");
    for name in &on_graph {
        assert!(
            layers.iter().any(|layer| name.starts_with(layer)),
            "{name} on the graph names no layer: {on_graph:?}"
        );
    }
    for layer in ["ods.", "dwd.", "dws.", "ads.", "sink."] {
        assert!(
            on_graph.iter().any(|name| name.starts_with(layer)),
            "no {layer} operator on the graph: {on_graph:?}"
        );
    }

    // The control room.
    let dom = browse(&profile, &format!("{base}/dashboard"), &["--dump-dom"]);
    assert!(
        !dom.contains("data-error"),
        "the page's script failed: {dom}"
    );
    let rows = dashboard["rows"].as_array().unwrap();
    assert!(!rows.is_empty(), "the latest windows have rows");
    for row in rows {
        let id = row["dashboard_id"].as_str().unwrap();
        let shown = row_of(&dom, &format!("data-row=\"{id}\""));
        for field in [
            "total_consumption",
            "user_count",
            "top_user_id",
            "peak_hour",
        ] {
            let expected = match &row[field] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            assert_eq!(
                text_of(shown, &format!("data-field=\"{field}\"")),
                expected,
                "{field} of {row}"
            );
        }
    }
    let total = corrections["total"].as_u64().unwrap();
    assert!(total > 0, "a job with late users has corrections");
    assert_eq!(integer_of(&dom, "id=\"corrections-total\""), total);
    let newest = &corrections["corrections"][0];
    let shown = row_of(&dom, &format!("data-correction=\"{}\"", newest["user_id"]));
    assert_eq!(
        text_of(shown, "data-field=\"dwd_rows\""),
        newest["dwd_rows"].to_string()
    );
    let share = dashboard["unknown_share"].as_f64().unwrap();
    assert_eq!(
        text_of(&dom, "id=\"unknown-share\""),
        format!("{:.2} %", share * 100.0)
    );
    // every region of the heat map is drawn
    for region in dashboard["regions"].as_array().unwrap() {
        assert!(dom.contains(&format!("data-heat=\"{}:0\"", region["region_id"])));
    }

    // Screenshots of both pages.
    for (page, file) in [("/", "job.png"), ("/dashboard", "dashboard.png")] {
        let path = shots.join(file);
        let _ = std::fs::remove_file(&path);
        browse(
            &profile,
            &format!("{base}{page}"),
            &[
                &format!("--screenshot={}", path.display()),
                "--window-size=1440,2200",
            ],
        );
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 20_000, "{} is {size} bytes", path.display());
    }

    let output = ctrl_c(child);
    assert!(output.status.success(), "{}", drain.join().unwrap());
}
