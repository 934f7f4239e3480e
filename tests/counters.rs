//! The job's counters and the web UI's feeds on a hand-built input, with figures worked out by
//! hand (not by the code under test): late rows behind the 5-second watermark, corrected window
//! rows, expired rows under retention, and each correction's DWD, window, ranking and dashboard
//! rows — with one worker and with two.

use std::sync::Arc;

use gridflow::check::testing::{reading, user};
use gridflow::metrics::Metrics;
use gridflow::model::rows::Millis;
use gridflow::model::Time;
use gridflow::operators::retention::Retention;
use gridflow::runtime::{run, Clock, RunConfig, SourceSpec};
use gridflow::sinks::materialized::Materialized;
use gridflow::sources::Tick;
use gridflow::ui::corrections::{Correction, Kind, SharedCorrections};
use gridflow::ui::live::{LiveDashboard, SharedLive};
use gridflow::ui::Monitor;

use crate::common::timely_config;

/// 2024-01-01T00:00:00Z, the start of a 5-second window.
const T0: Millis = 1_704_067_200_000;

fn tick(
    at: Millis,
    users: Vec<gridflow::model::rows::User>,
    rows: Vec<gridflow::model::rows::Consumption>,
) -> Tick {
    Tick {
        time: (T0 + at) as Time,
        users: users.into_iter().map(|u| (u.user_id, Some(u))).collect(),
        consumption: rows
            .into_iter()
            .map(|c| (c.consumption_id, Some(c)))
            .collect(),
    }
}

/// Window 0 is `[T0, T0+5s)`, window 1 `[T0+5s, T0+10s)`; retention 1 s freezes window 0 at
/// `T0+6s`.
fn input() -> Vec<Tick> {
    vec![
        // user 1 has rows in windows 0 and 1, user 2 in window 0; neither exists yet
        tick(
            1_000,
            vec![],
            vec![
                reading(1, 1, 100, T0 + 100),
                reading(2, 2, 200, T0 + 200),
                reading(3, 1, 300, T0 + 6_000),
            ],
        ),
        // user 1 arrives late (region 5). Row 4's date is behind the watermark (T0+6s − 5s).
        tick(
            2_000,
            vec![user(1, "张三", 5, "五区")],
            vec![reading(4, 2, 400, T0 + 300)],
        ),
        // user 1 moves to region 6; user 3 arrives with no rows (corrects nothing)
        tick(
            3_000,
            vec![user(1, "张三", 6, "六区"), user(3, "李四", 6, "六区")],
            vec![],
        ),
        // the same row again changes nothing
        tick(4_000, vec![user(1, "张三", 6, "六区")], vec![]),
        // window 0 has frozen: row 5 expires; row 6 (window 1) is applied, and not late
        tick(
            7_000,
            vec![],
            vec![reading(5, 2, 500, T0 + 100), reading(6, 2, 600, T0 + 5_500)],
        ),
    ]
}

fn run_with(workers: usize) -> (Metrics, Vec<Correction>, SharedLive, Materialized) {
    let live: SharedLive = Arc::new(std::sync::Mutex::new(LiveDashboard::new(5_000)));
    let corrections = SharedCorrections::default();
    let config = RunConfig {
        timely: timely_config(workers, false),
        retention: Retention {
            window: 5_000,
            horizon: Some(1_000),
        },
        clock: Clock::Simulated,
        max_inflight: 1,
        // every tick sealed on its own
        progress_rows: 1,
        sink_ods_and_dwd: true,
        stop: Default::default(),
        durability: None,
        gathered: None,
        monitor: Some(Monitor {
            live: Some(live.clone()),
            corrections: Some(corrections.clone()),
            dataflow: None,
        }),
    };
    let metrics = Arc::new(Metrics::default());
    let outcome = run(
        config,
        SourceSpec::Scripted(input()),
        Some(Materialized::default),
        metrics.clone(),
    )
    .unwrap();
    let mut newest = corrections.lock().unwrap().newest(10);
    newest.reverse();
    (
        Arc::try_unwrap(metrics).unwrap_or_default(),
        newest,
        live,
        outcome.sink.unwrap(),
    )
}

#[test]
fn counters_and_corrections_match_the_hand_worked_figures() {
    for workers in [1, 2] {
        let (metrics, corrections, live, export) = run_with(workers);
        let counters = metrics.snapshot();
        assert_eq!(counters.late_rows, 1, "row 4, with {workers} workers");
        assert_eq!(counters.expired_rows, 1, "row 5");
        // Region rows taken back: at 2 s window 0's and window 1's region-0 rows (user 1
        // leaves region 0), at 3 s both windows' region-5 rows (it moves on). At 7 s row 6
        // makes a new region-0 row of window 1 (emptied at 2 s), and window 0's freeze takes
        // nothing back outside the dataflow: 4 in all.
        assert_eq!(counters.corrected_window_rows, 4, "with {workers} workers");
        assert_eq!(counters.corrections, 2);
        assert_eq!(corrections.len(), 2, "{corrections:?}");

        let late = &corrections[0];
        assert_eq!(late.time, (T0 + 2_000) as Time);
        assert_eq!((late.user_id, late.kind), (1, Kind::Late));
        assert_eq!((late.region_before, late.region_after), (0, 5));
        // rows 1 and 3; windows 0 and 1; ranking rows taken back: window 0 region 0 (users 1
        // and 2), window 1 region 0 (user 1); region rows taken back: both windows' region 0
        assert_eq!(
            (
                late.dwd_rows,
                late.windows,
                late.ranking_rows,
                late.dashboard_rows
            ),
            (2, 2, 3, 2),
            "{late:?}"
        );
        assert!(late.consistent_after_ms.is_some());

        let moved = &corrections[1];
        assert_eq!((moved.user_id, moved.kind), (1, Kind::Move));
        assert_eq!((moved.region_before, moved.region_after), (5, 6));
        assert_eq!(
            (
                moved.dwd_rows,
                moved.windows,
                moved.ranking_rows,
                moved.dashboard_rows
            ),
            (2, 2, 2, 2),
            "{moved:?}"
        );

        // The live dashboard holds what the export holds (both windows are among the latest).
        let view = live.lock().unwrap().view();
        let (warehouse, _) = export.snapshot();
        let mut exported: Vec<(String, String)> = warehouse
            .dashboards
            .iter()
            .map(|d| {
                (
                    gridflow::model::values::dashboard_id(d.region_id, d.stat_date),
                    gridflow::model::values::format_cents(d.total_consumption),
                )
            })
            .collect();
        let mut shown: Vec<(String, String)> = view
            .rows
            .iter()
            .map(|r| (r.dashboard_id.clone(), r.total_consumption.clone()))
            .collect();
        exported.sort();
        shown.sort();
        assert_eq!(shown, exported);
        // window 0: region 6 has rows 1 (1.00), region 0 rows 2 and 4 (6.00); window 1: region
        // 6 row 3 (3.00), region 0 row 6 (6.00): 12.00 of 16.00 is unknown
        assert!(
            (view.unknown_share - 12.0 / 16.0).abs() < 1e-12,
            "{}",
            view.unknown_share
        );
    }
}
