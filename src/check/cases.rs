//! The generator of adversarial cases, shared by the property tests (`tests/properties.rs`)
//! and `gridflow verify --random`, so neither rots: proptest strategies for a run's
//! configuration (window, worker count, serialization, pacing, retention) and for its input —
//! ticks of upserts and deletes of both ODS tables with repeated keys, users that arrive late,
//! move region or vanish, consumption rows far behind the watermark, and round amounts so that
//! sums, rankings and peak hours tie.

use proptest::prelude::*;

use crate::model::rows::{Cents, Consumption, ConsumptionId, Millis, RegionId, User, UserId};
use crate::model::Time;
use crate::operators::retention::Retention;
use crate::runtime::{Clock, RunConfig};
use crate::sources::Tick;

/// 2024-01-01T00:00:00Z: the first tick is one second after it.
pub const START: Millis = 1_704_067_200_000;
pub const SECOND: Millis = 1_000;
pub const HOUR: Millis = 3_600_000;
pub const DAY: Millis = 24 * HOUR;

/// How a run is configured, besides its input.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub window: Millis,
    pub workers: usize,
    pub serialize: bool,
    pub max_inflight: usize,
    /// Rows a worker sends before the input frontier advances (rows keep their tick's time).
    pub progress_rows: usize,
    /// The retention horizon (SPEC §4a), if any.
    pub retention: Option<Millis>,
}

impl Params {
    pub fn run_config(&self) -> RunConfig {
        use timely::CommunicationConfig;
        let communication = if self.serialize {
            CommunicationConfig::ProcessBinary(self.workers)
        } else if self.workers > 1 {
            CommunicationConfig::Process(self.workers)
        } else {
            CommunicationConfig::Thread
        };
        RunConfig {
            timely: timely::Config {
                communication,
                worker: timely::WorkerConfig::default(),
            },
            retention: Retention {
                window: self.window,
                horizon: self.retention,
            },
            clock: Clock::Simulated,
            max_inflight: self.max_inflight,
            progress_rows: self.progress_rows,
            sink_ods_and_dwd: true,
            stop: Default::default(),
            durability: None,
            gathered: None,
            monitor: None,
        }
    }
}

pub fn name_of(names: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    proptest::option::of(proptest::sample::select(names).prop_map(String::from))
}

pub fn user_row(user_id: UserId) -> impl Strategy<Value = User> {
    (
        name_of(&["张三", "李四", "王五"]),
        name_of(&["居民", "工业", "商业", "农业"]),
        proptest::option::of(0..=3 as RegionId),
        name_of(&["东区", "西区", "南区", "北区"]),
        proptest::option::of("[a-c]{0,3}"),
        proptest::option::of("[0-9]{0,4}"),
        proptest::option::of(0..1_000 as Millis),
        proptest::option::of(0..1_000 as Millis),
    )
        .prop_map(
            move |(
                user_name,
                usage_type,
                region_id,
                region_name,
                address,
                phone,
                create_time,
                update_time,
            )| User {
                user_id,
                user_name,
                usage_type,
                region_id,
                region_name,
                address,
                phone,
                create_time,
                update_time,
            },
        )
}

/// An upsert of `power_user`: keys 1..=6, a delete about 15% of the time.
pub fn user_upsert() -> impl Strategy<Value = (UserId, Option<User>)> {
    (1..=6 as UserId)
        .prop_flat_map(|key| (Just(key), proptest::option::weighted(0.85, user_row(key))))
}

/// Money: mostly anything in -5.00..=1000.00, sometimes a few round values so that sums, maxima,
/// rankings and peak hours tie.
pub fn cents() -> impl Strategy<Value = Cents> {
    prop_oneof![
        3 => -500..=100_000 as Cents,
        1 => proptest::sample::select(vec![0 as Cents, 100, 200]),
    ]
}

/// Event times: a cluster of seconds around the start (so 1 s and 5 s windows hold several
/// rows), a few hours around it (other hours, hour and day windows), and days behind (late rows).
pub fn consumption_date() -> impl Strategy<Value = Millis> {
    prop_oneof![
        5 => (-10..20 as Millis).prop_map(|half_seconds| START + half_seconds * 500),
        3 => (-3 * HOUR..3 * HOUR).prop_map(|offset| START + offset),
        2 => (-3 * DAY..-DAY).prop_map(|offset| START + offset),
    ]
}

pub fn consumption_row(consumption_id: ConsumptionId) -> impl Strategy<Value = Consumption> {
    (
        1..=8 as UserId,
        cents(),
        cents(),
        consumption_date(),
        proptest::option::of(0..=1_000_000 as Cents),
        proptest::option::of(0..=1_000_000 as Cents),
        name_of(&["", "补录", "估抄"]),
    )
        .prop_map(
            move |(
                user_id,
                consumption_amount,
                consumption_cost,
                consumption_date,
                meter_reading_before,
                meter_reading_after,
                remark,
            )| Consumption {
                consumption_id,
                user_id,
                consumption_amount,
                consumption_cost,
                consumption_date,
                meter_reading_before,
                meter_reading_after,
                remark,
            },
        )
}

/// An upsert of `power_consumption`: keys 1..=25 naming users 1..=8 (7 and 8 never exist), a
/// delete about 10% of the time.
pub fn consumption_upsert() -> impl Strategy<Value = (ConsumptionId, Option<Consumption>)> {
    (1..=25 as ConsumptionId).prop_flat_map(|key| {
        (
            Just(key),
            proptest::option::weighted(0.9, consumption_row(key)),
        )
    })
}

/// 1..12 ticks a second apart, each with 0..8 user and 0..10 consumption upserts.
pub fn ticks() -> impl Strategy<Value = Vec<Tick>> {
    proptest::collection::vec(
        (
            proptest::collection::vec(user_upsert(), 0..8),
            proptest::collection::vec(consumption_upsert(), 0..10),
        ),
        1..12,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(|(k, (users, consumption))| tick(k, users, consumption))
            .collect()
    })
}

pub fn params() -> impl Strategy<Value = Params> {
    (
        proptest::sample::select(vec![SECOND, 5 * SECOND, HOUR, DAY]),
        1..=3usize,
        any::<bool>(),
        1..=4usize,
        proptest::sample::select(vec![1, 5, 20, 1000]),
        proptest::sample::select(vec![None, None, Some(SECOND), Some(3 * SECOND), Some(HOUR)]),
    )
        .prop_map(
            |(window, workers, serialize, max_inflight, progress_rows, retention)| Params {
                window,
                workers,
                serialize,
                max_inflight,
                progress_rows,
                retention,
            },
        )
}

/// The `k`th tick (from 0): one second after the previous one.
pub fn tick(
    k: usize,
    users: Vec<(UserId, Option<User>)>,
    consumption: Vec<(ConsumptionId, Option<Consumption>)>,
) -> Tick {
    let time = START + (k as Millis + 1) * SECOND;
    Tick {
        time: time as Time,
        users,
        consumption,
    }
}
