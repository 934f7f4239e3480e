//! The web UI's API against a running job, over real HTTP: `/api/job`, `/api/metrics` and
//! Prometheus' `/metrics`.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{ctrl_c, gridflow, scratch_dir};

pub fn get(url: &str) -> (String, String) {
    let mut response = ureq::get(url).call().unwrap();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (content_type, response.body_mut().read_to_string().unwrap())
}

/// Reads a run's first lines up to the one naming where its UI listens (port 0: the system
/// picked one); returns the UI's base URL and the rest of the output, to be drained.
pub fn ui_address(
    stderr: std::process::ChildStderr,
) -> (String, BufReader<std::process::ChildStderr>) {
    let mut stderr = BufReader::new(stderr);
    for _ in 0..20 {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(rest) = line.trim().strip_prefix("web UI on ") {
            let url = rest.split_whitespace().next().unwrap_or_default();
            return (url.trim_end_matches('/').to_string(), stderr);
        }
    }
    panic!("the run does not name its UI's address");
}

#[test]
fn a_running_job_serves_its_state_and_counters_over_http() {
    let state = scratch_dir("ui_state");
    let database = state.join("warehouse.db");
    let mut child = gridflow(&state)
        .env_remove("GRIDFLOW_NO_UI")
        .args([
            "run",
            "--status-interval",
            "0",
            "--clock",
            "wall",
            "--seed",
            "3",
        ])
        .args(["--consumption-rate", "200", "--ui-addr", "127.0.0.1:0"])
        .arg("--sink")
        .arg(format!("sqlite://{}", database.display()))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first lines say where the UI listens (port 0: the system picked one).
    let (base, stderr) = ui_address(child.stderr.take().unwrap());

    let (content_type, job) = get(&format!("{base}/api/job"));
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let job: serde_json::Value = serde_json::from_str(&job).unwrap();
    assert_eq!(job["status"], "RUNNING", "{job}");
    assert_eq!(job["options"]["--seed"], "3", "{job}");
    assert_eq!(job["workers"], 1, "{job}");
    assert!(job["id"].as_str().is_some_and(|id| id.len() == 16), "{job}");
    assert!(
        job["sink"].as_str().unwrap().starts_with("sqlite://"),
        "{job}"
    );

    // Rows flow in at 200 a second: the counters grow.
    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let (_, body) = get(&format!("{base}/api/metrics"));
        let metrics: serde_json::Value = serde_json::from_str(&body).unwrap();
        if metrics["ods_consumption_rows"].as_u64().unwrap_or(0) > 100 {
            break metrics;
        }
        assert!(Instant::now() < deadline, "no rows counted: {metrics}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        metrics["peak_memory_bytes"].as_u64().unwrap() > 0,
        "{metrics}"
    );
    // Latency percentiles of the last minute, from a histogram: ordered, and counted.
    let latency = &metrics["latency"];
    assert!(latency["count"].as_u64().unwrap() > 0, "{metrics}");
    let p50 = latency["p50_ms"].as_f64().unwrap();
    let p99 = latency["p99_ms"].as_f64().unwrap();
    let max = latency["max_ms"].as_f64().unwrap();
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{metrics}");

    let (content_type, text) = get(&format!("{base}/metrics"));
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let rows: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("gridflow_ods_consumption_rows_total "))
        .and_then(|value| value.parse().ok())
        .expect("the consumption counter");
    assert!(rows > 100, "{text}");
    assert!(
        text.contains("# TYPE gridflow_sink_busy_seconds counter"),
        "{text}"
    );
    assert!(text.contains("gridflow_latency_p99_seconds "), "{text}");

    // The job stops as usual; its remaining output is drained so it never blocks on the pipe.
    let drain = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let output = ctrl_c(child);
    assert!(output.status.success(), "{}", drain.join().unwrap());
}

#[test]
fn process_zero_serves_the_counters_of_every_process() {
    let cluster = scratch_dir("ui_cluster");
    let hostfile = cluster.join("hosts");
    let ports = [crate::processes::free_port(), crate::processes::free_port()];
    let hosts = format!("127.0.0.1:{}\n127.0.0.1:{}\n", ports[0], ports[1]);
    std::fs::write(&hostfile, hosts).unwrap();
    let spawn = |process: &str| {
        let mut command = gridflow(&cluster.join("state"));
        command
            .args([
                "run",
                "--status-interval",
                "0",
                "--clock",
                "wall",
                "--seed",
                "5",
            ])
            .args(["--consumption-rate", "200", "--sink", "none", "-w", "1"])
            .args(["-n", "2", "-p", process, "--hostfile"])
            .arg(&hostfile)
            .stderr(Stdio::piped());
        if process == "0" {
            command
                .env_remove("GRIDFLOW_NO_UI")
                .args(["--ui-addr", "127.0.0.1:0"]);
        }
        command.spawn().unwrap()
    };
    let mut zero = spawn("0");
    let one = spawn("1");
    let (base, stderr) = ui_address(zero.stderr.take().unwrap());
    let drain = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());

    // Each process generates the rows of the users it owns: both counters grow, and the job's
    // total is their sum.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = get(&format!("{base}/api/metrics"));
        let metrics: serde_json::Value = serde_json::from_str(&body).unwrap();
        let processes = metrics["processes"].as_array().unwrap();
        assert_eq!(processes.len(), 2, "{metrics}");
        let rows: Vec<u64> = processes
            .iter()
            .map(|p| p["ods_consumption_rows"].as_u64().unwrap_or(0))
            .collect();
        if rows.iter().all(|&rows| rows > 50) {
            let total = metrics["ods_consumption_rows"].as_u64().unwrap();
            assert!(total >= rows[1] && total > rows[0], "{metrics}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every process heard: {metrics}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Both stop together: a process drains only once every process has stopped reading.
    for child in [&zero, &one] {
        let pid = child.id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }
    let outputs = [
        zero.wait_with_output().unwrap(),
        one.wait_with_output().unwrap(),
    ];
    let zero_stderr = drain.join().unwrap();
    assert!(outputs[0].status.success(), "{zero_stderr}");
    assert!(
        outputs[1].status.success(),
        "{}",
        String::from_utf8_lossy(&outputs[1].stderr)
    );
}
