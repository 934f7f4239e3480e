//! Property tests of exactness: the real dataflow, driven through many logical times with random
//! upserts and deletes of both ODS tables (repeated keys, users that arrive late, move region or
//! vanish, consumption rows far behind the watermark), must hold AT EVERY completed logical time
//! exactly what `gridflow::check::twin::recompute` computes from scratch over the ODS state seen so
//! far — all six tables (ODS, DWD, both DWS tables, ADS) — with every row at multiplicity 0 or 1,
//! whatever the window, the worker count, serialization between workers and the pacing.
//!
//! Besides the random property there are hand-built scenarios for the cases the engine exists
//! for, compared against the same oracle and, for some, against values written out by hand.
//!
//! The random inputs and configurations come from `gridflow::check::cases`, the generator
//! `gridflow verify --random` draws from too.
//!
//! Failing cases are persisted to `tests/proptest-regressions/properties.txt` (committed), so a
//! failure once found is replayed first on every later run.

use std::collections::HashMap;
use std::fmt::{Debug, Write as _};
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};

use gridflow::check::cases::{params, tick, ticks, Params, DAY, HOUR, SECOND, START};
use gridflow::check::testing::{reading, user};
use gridflow::check::twin::RetainedJob;
use gridflow::metrics::Metrics;
use gridflow::model::rows::{
    Cents, Consumption, ConsumptionId, Millis, RegionId, User, UserId, UNKNOWN_REGION_ID,
    UNKNOWN_REGION_NAME, UNKNOWN_USER_NAME,
};
use gridflow::model::TableRow;
use gridflow::model::Time;
use gridflow::model::Warehouse;
use gridflow::runtime::{run, SourceSpec};
use gridflow::sinks::materialized::{snapshot, Materialized};
use gridflow::sources::Tick;

/// Where proptest keeps failing seeds. Proptest's default (`SourceParallel`) looks for a
/// `lib.rs`/`main.rs` above the test file, finds none for `tests/properties.rs` and falls back to
/// `tests/properties.proptest-regressions`; this keeps them in a folder inside `tests/` instead.
const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/proptest-regressions/properties.txt"
);

/// Runs the dataflow over `ticks` and checks, at the time of every tick, that the tables the
/// sink has accumulated equal the batch recomputation over the ODS state after that tick, and
/// that every row's multiplicity is 0 or 1. Returns the engine's tables after each tick.
fn check_against_oracle(ticks: &[Tick], params: &Params) -> Result<Vec<Warehouse>, TestCaseError> {
    let metrics = Arc::new(Metrics::default());
    let config = params.run_config();
    let retention = config.retention;
    let outcome = run(
        config,
        SourceSpec::Scripted(ticks.to_vec()),
        Some(move || Materialized::logging_under(retention)),
        metrics.clone(),
    )
    .map_err(|e| TestCaseError::fail(format!("the run failed: {e}")))?;
    let sink = outcome
        .sink
        .ok_or_else(|| TestCaseError::fail("worker 0 returned no sink"))?;
    prop_assert!(
        sink.violations.is_empty(),
        "multiplicities left {{0, 1}}: {:?}",
        sink.violations
    );
    let log = sink
        .log
        .ok_or_else(|| TestCaseError::fail("the sink kept no log"))?;

    // The sink hands over each completed time once, in time order, and only the ticks' times.
    let tick_times: Vec<Time> = ticks.iter().map(|t| t.time).collect();
    for pair in log.windows(2) {
        prop_assert!(
            pair[0].0 < pair[1].0,
            "change sets out of order: {} then {}",
            pair[0].0,
            pair[1].0
        );
    }
    for (time, _) in &log {
        prop_assert!(
            tick_times.contains(time),
            "a change set at {time}, not the time of any tick"
        );
    }

    let mut twin = RetainedJob::new(params.window, params.retention);
    let mut accumulated: HashMap<TableRow, isize> = HashMap::new();
    let mut changes = log.iter().peekable();
    let mut actuals = Vec::with_capacity(ticks.len());
    for (k, tick) in ticks.iter().enumerate() {
        // The tables after this tick, computed from scratch by the batch twin.
        let expected = twin.tick(tick.time, &tick.users, &tick.consumption);

        // The engine's tables at this time: every change set up to it.
        while let Some((_, set)) = changes.next_if(|(time, _)| *time <= tick.time) {
            for (row, diff) in set {
                *accumulated.entry(row.clone()).or_insert(0) += diff;
            }
        }
        accumulated.retain(|_, count| *count != 0);
        let bad: Vec<(&TableRow, isize)> = accumulated
            .iter()
            .filter(|(_, count)| **count != 1)
            .map(|(row, count)| (row, *count))
            .collect();
        prop_assert!(
            bad.is_empty(),
            "at tick {k} (time {}): rows with multiplicity other than 0 or 1: {bad:?}",
            tick.time
        );
        let (actual, errors) = snapshot(accumulated.iter().map(|(row, count)| (row, *count)));
        prop_assert!(errors.is_empty(), "at tick {k}: error rows {errors:?}");
        prop_assert_eq!(
            &actual,
            &expected,
            "at tick {} (time {}), {:?}; engine (+) vs reference (-):\n{}",
            k,
            tick.time,
            params,
            warehouse_diff(&actual, &expected)
        );
        actuals.push(actual);
    }
    let expired = metrics.snapshot().expired_rows;
    prop_assert_eq!(
        expired,
        twin.expired,
        "expired rows counted by the engine vs the twin"
    );
    Ok(actuals)
}

/// The rows of each table only the engine has (+) or only the reference has (-).
fn warehouse_diff(actual: &Warehouse, expected: &Warehouse) -> String {
    let mut out = String::new();
    table_diff("users", &actual.users, &expected.users, &mut out);
    table_diff(
        "consumption",
        &actual.consumption,
        &expected.consumption,
        &mut out,
    );
    table_diff("details", &actual.details, &expected.details, &mut out);
    table_diff(
        "region_stats",
        &actual.region_stats,
        &expected.region_stats,
        &mut out,
    );
    table_diff("rankings", &actual.rankings, &expected.rankings, &mut out);
    table_diff(
        "dashboards",
        &actual.dashboards,
        &expected.dashboards,
        &mut out,
    );
    out
}

fn table_diff<T: PartialEq + Debug>(name: &str, actual: &[T], expected: &[T], out: &mut String) {
    for row in actual.iter().filter(|r| !expected.contains(r)) {
        let _ = writeln!(out, "  {name} + {row:?}");
    }
    for row in expected.iter().filter(|r| !actual.contains(r)) {
        let _ = writeln!(out, "  {name} - {row:?}");
    }
    if actual.len() != expected.len() {
        let _ = writeln!(out, "  {name}: {} rows vs {}", actual.len(), expected.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        // Each case is a whole run; enough steps to shrink to a near-minimal input.
        max_shrink_iters: 1024,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_layer_equals_the_batch_recomputation_at_every_time(
        ticks in ticks(),
        params in params(),
    ) {
        check_against_oracle(&ticks, &params)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-built scenarios

fn upsert_user(u: User) -> (UserId, Option<User>) {
    (u.user_id, Some(u))
}

fn upsert_reading(c: Consumption) -> (ConsumptionId, Option<Consumption>) {
    (c.consumption_id, Some(c))
}

/// The configurations every scenario runs under.
const SCENARIO_PARAMS: [Params; 4] = [
    Params {
        window: 5 * SECOND,
        workers: 1,
        serialize: false,
        max_inflight: 1,
        progress_rows: 1,
        retention: None,
    },
    Params {
        window: 5 * SECOND,
        workers: 2,
        serialize: true,
        max_inflight: 4,
        progress_rows: 3,
        retention: None,
    },
    Params {
        window: HOUR,
        workers: 3,
        serialize: false,
        max_inflight: 2,
        progress_rows: 1000,
        retention: None,
    },
    Params {
        window: DAY,
        workers: 3,
        serialize: true,
        max_inflight: 1,
        progress_rows: 7,
        retention: None,
    },
];

/// Runs a scenario under every configuration, checking it against the oracle, and returns the
/// engine's tables after each tick (the same for every configuration, so the first run's).
fn scenario(ticks: &[Tick]) -> Vec<Warehouse> {
    scenario_with_retention(ticks, None)
}

/// As [`scenario`], with a retention horizon in every configuration.
fn scenario_with_retention(ticks: &[Tick], retention: Option<Millis>) -> Vec<Warehouse> {
    let mut first: Option<Vec<Warehouse>> = None;
    for params in &SCENARIO_PARAMS {
        let params = &Params {
            retention,
            ..*params
        };
        let actuals =
            check_against_oracle(ticks, params).unwrap_or_else(|e| panic!("{params:?}: {e}"));
        first.get_or_insert(actuals);
    }
    first.expect("there are configurations")
}

/// (consumption_id, region_id, region_name, user_name) of every detail row.
fn detail_dims(w: &Warehouse) -> Vec<(ConsumptionId, RegionId, String, String)> {
    w.details
        .iter()
        .map(|d| {
            (
                d.fact.consumption_id,
                d.dim.region_id,
                d.dim.region_name.to_string(),
                d.dim.user_name.to_string(),
            )
        })
        .collect()
}

#[test]
fn a_user_arriving_after_its_consumption_moves_it_out_of_region_0() {
    let ticks = vec![
        tick(
            0,
            vec![],
            vec![
                upsert_reading(reading(1, 3, 150, START)),
                upsert_reading(reading(2, 3, 250, START + 1_200)),
            ],
        ),
        tick(
            1,
            vec![],
            vec![upsert_reading(reading(3, 4, 100, START + 2_000))],
        ),
        tick(2, vec![upsert_user(user(3, "王五", 2, "南区"))], vec![]),
    ];
    let actuals = scenario(&ticks);
    let unknown = |id| {
        (
            id,
            UNKNOWN_REGION_ID,
            UNKNOWN_REGION_NAME.to_string(),
            UNKNOWN_USER_NAME.to_string(),
        )
    };
    let south = |id| (id, 2, "南区".to_string(), "王五".to_string());
    assert_eq!(detail_dims(&actuals[0]), vec![unknown(1), unknown(2)]);
    assert_eq!(
        detail_dims(&actuals[1]),
        vec![unknown(1), unknown(2), unknown(3)]
    );
    assert_eq!(
        detail_dims(&actuals[2]),
        vec![south(1), south(2), unknown(3)]
    );
    // The dashboard of the window [START, START + 5 s) splits into region 0 (user 4) and 2.
    let dashboards = |w: &Warehouse| -> Vec<(RegionId, UserId, Cents)> {
        w.dashboards
            .iter()
            .map(|d| (d.region_id, d.top_user_id, d.total_consumption))
            .collect()
    };
    assert_eq!(dashboards(&actuals[1]), vec![(0, 3, 500)]);
    assert_eq!(dashboards(&actuals[2]), vec![(0, 4, 100), (2, 3, 400)]);
}

#[test]
fn a_user_moving_region_then_deleted_takes_its_rows_back_to_the_unknown_region() {
    let ticks = vec![
        tick(
            0,
            vec![upsert_user(user(1, "张三", 1, "东区"))],
            vec![
                upsert_reading(reading(10, 1, 300, START)),
                upsert_reading(reading(11, 2, 700, START + 500)),
            ],
        ),
        tick(1, vec![upsert_user(user(1, "张三", 3, "北区"))], vec![]),
        tick(2, vec![(1, None)], vec![]),
    ];
    let actuals = scenario(&ticks);
    let region_of_10 = |w: &Warehouse| -> (RegionId, String) {
        let d = w
            .details
            .iter()
            .find(|d| d.fact.consumption_id == 10)
            .expect("row 10 is in DWD");
        (d.dim.region_id, d.dim.region_name.to_string())
    };
    assert_eq!(region_of_10(&actuals[0]), (1, "东区".to_string()));
    assert_eq!(region_of_10(&actuals[1]), (3, "北区".to_string()));
    assert_eq!(
        region_of_10(&actuals[2]),
        (UNKNOWN_REGION_ID, UNKNOWN_REGION_NAME.to_string())
    );
    // Region 0 ends up with both rows: two users, user 2 ranked first.
    let last = &actuals[2];
    assert_eq!(last.region_stats.len(), 1);
    assert_eq!(last.region_stats[0].region_id, 0);
    assert_eq!(last.region_stats[0].user_count, 2);
    assert_eq!(last.region_stats[0].total_consumption, 1000);
    assert_eq!(last.dashboards[0].top_user_id, 2);
    assert!(last.users.is_empty());
}

#[test]
fn a_consumption_row_deleted_and_reinserted_with_another_user_follows_the_new_user() {
    let ticks = vec![
        tick(
            0,
            vec![
                upsert_user(user(1, "张三", 1, "东区")),
                upsert_user(user(2, "李四", 2, "西区")),
            ],
            vec![upsert_reading(reading(5, 1, 400, START))],
        ),
        tick(1, vec![], vec![(5, None)]),
        tick(
            2,
            vec![],
            vec![upsert_reading(reading(5, 2, 900, START - 2 * DAY))],
        ),
    ];
    let actuals = scenario(&ticks);
    assert_eq!(
        detail_dims(&actuals[0]),
        vec![(5, 1, "东区".to_string(), "张三".to_string())]
    );
    assert_eq!(
        actuals[1],
        Warehouse {
            users: actuals[0].users.clone(),
            ..Warehouse::default()
        }
    );
    assert_eq!(
        detail_dims(&actuals[2]),
        vec![(5, 2, "西区".to_string(), "李四".to_string())]
    );
    let rankings: Vec<(UserId, RegionId, Cents, u64)> = actuals[2]
        .rankings
        .iter()
        .map(|r| (r.user_id, r.region_id, r.total_consumption, r.ranking))
        .collect();
    assert_eq!(rankings, vec![(2, 2, 900, 1)]);
}

#[test]
fn a_key_repeated_within_one_tick_keeps_its_last_row() {
    let ticks = vec![
        tick(
            0,
            vec![
                upsert_user(user(1, "张三", 1, "东区")),
                (1, None),
                upsert_user(user(1, "张三", 2, "西区")),
                upsert_user(user(2, "李四", 3, "北区")),
                (2, None),
            ],
            vec![
                upsert_reading(reading(5, 1, 100, START)),
                upsert_reading(reading(5, 2, 200, START + SECOND)),
                upsert_reading(reading(6, 1, 300, START)),
                (6, None),
                (7, None),
                upsert_reading(reading(7, 1, 50, START + 2 * SECOND)),
            ],
        ),
        tick(
            1,
            vec![(1, None), upsert_user(user(1, "张三", 1, "东区"))],
            vec![(5, None), upsert_reading(reading(5, 1, 10, START))],
        ),
    ];
    let actuals = scenario(&ticks);
    let users = |w: &Warehouse| -> Vec<(UserId, Option<RegionId>)> {
        w.users.iter().map(|u| (u.user_id, u.region_id)).collect()
    };
    let facts = |w: &Warehouse| -> Vec<(ConsumptionId, UserId, Cents, RegionId)> {
        w.details
            .iter()
            .map(|d| {
                (
                    d.fact.consumption_id,
                    d.fact.user_id,
                    d.fact.amount,
                    d.dim.region_id,
                )
            })
            .collect()
    };
    assert_eq!(users(&actuals[0]), vec![(1, Some(2))]);
    assert_eq!(facts(&actuals[0]), vec![(5, 2, 200, 0), (7, 1, 50, 2)]);
    assert_eq!(users(&actuals[1]), vec![(1, Some(1))]);
    assert_eq!(facts(&actuals[1]), vec![(5, 1, 10, 1), (7, 1, 50, 1)]);
}

#[test]
fn a_frozen_window_keeps_its_rows_through_user_moves_late_rows_and_reused_ids() {
    // 5 s windows (scenario configurations use 5 s, 1 h and 1 d) and a 3 s horizon: the window
    // [START, START + 5 s) freezes at START + 8 s, tick 7.
    let ticks = vec![
        tick(
            0,
            vec![upsert_user(user(1, "张三", 1, "东区"))],
            vec![
                upsert_reading(reading(1, 1, 100, START)),
                upsert_reading(reading(2, 2, 40, START + 2 * SECOND)),
            ],
        ),
        tick(1, vec![], vec![]),
        tick(2, vec![], vec![]),
        tick(3, vec![], vec![]),
        tick(4, vec![], vec![]),
        tick(5, vec![], vec![]),
        tick(6, vec![], vec![]),
        // START + 8 s: the first window is frozen from here on (for 5 s windows).
        tick(
            7,
            vec![
                upsert_user(user(1, "张三", 2, "西区")),
                upsert_user(user(2, "李四", 3, "北区")),
            ],
            vec![
                // Its window is frozen: expired.
                upsert_reading(reading(3, 1, 999, START + SECOND)),
                // A live window.
                upsert_reading(reading(4, 1, 70, START + 6 * SECOND)),
            ],
        ),
        // Id 1 again, in a live window: a new row; deleting id 2 (frozen) changes nothing.
        tick(
            8,
            vec![],
            vec![
                upsert_reading(reading(1, 2, 500, START + 7 * SECOND)),
                (2, None),
            ],
        ),
    ];
    let actuals = scenario_with_retention(&ticks, Some(3 * SECOND));
    let stats = |w: &Warehouse| -> Vec<(RegionId, Millis, Cents)> {
        w.region_stats
            .iter()
            .map(|r| (r.region_id, r.stat_date - START, r.total_consumption))
            .collect()
    };
    // Before the freeze, user 2 is unknown (region 0) ...
    assert_eq!(stats(&actuals[6]), vec![(0, 0, 40), (1, 0, 100)]);
    // ... and stays so in the frozen window after it arrives; user 1's move reaches only the
    // live window.
    assert_eq!(
        stats(&actuals[7]),
        vec![(0, 0, 40), (1, 0, 100), (2, 5 * SECOND, 70)]
    );
    assert_eq!(
        stats(&actuals[8]),
        vec![
            (0, 0, 40),
            (1, 0, 100),
            (2, 5 * SECOND, 70),
            (3, 5 * SECOND, 500)
        ]
    );
    // The frozen ODS rows stay, but for id 1: every table outside stays keyed, so its live row
    // replaced its frozen one (SPEC §4a); the frozen window's DWS rows keep what it had.
    let rows: Vec<(ConsumptionId, Cents)> = actuals[8]
        .consumption
        .iter()
        .map(|c| (c.consumption_id, c.consumption_amount))
        .collect();
    assert_eq!(rows, vec![(1, 500), (2, 40), (4, 70)]);
}
