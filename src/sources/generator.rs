//! The DataGen equivalent (SPEC §2): a deterministic generator of `power_user` and
//! `power_consumption` rows, producing one worker's share as a [`Source`].
//!
//! There is one global sequence of rows, a function of the [`GeneratorConfig`] only — never of
//! the worker or the number of workers:
//!
//! - consumption row `i` (`consumption_id = i + 1`) is emitted at generator time
//!   `start + floor(i * 1000 / consumption_rate)` ms, user row `j` at
//!   `start + floor(j * 1000 / user_rate)` ms;
//! - every row draws its randomness from its own `Xoshiro256PlusPlus` seeded with a hash of
//!   `(seed, stream, index)`, so row `i` can be computed without the rows before it;
//! - the first `users` user rows insert users `1..=users`; later user rows update a uniform
//!   user (a move to another region, a new name or a new usage type), delete it with
//!   probability 0.02, or re-insert it if it is currently deleted;
//! - each user's meter starts at a value derived from `(seed, user_id)` and advances by the
//!   amount of every consumption row of that user, so `after = before + amount` and a row's
//!   `before` is the previous row's `after`.
//!
//! A worker emits only the rows of the users it owns ([`owner_of`] on `user_id`, for both
//! tables): partitioning consumption by user keeps each user's meter sequence on one worker.
//! Every worker walks every consumption index (one rng seed and one draw to learn its user) and
//! replays the whole, small, user sequence to keep every user's current state.
//!
//! Tick `k` covers generator time `[start + k*tick, start + (k+1)*tick)`; its logical time and
//! its clock are both the epoch millisecond of its end. Every tick is produced, even an empty
//! one, so all workers produce the same sequence of times.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::position::{GeneratorPosition, UserState};
use super::{last_upsert_wins, owner_of, PositionError, Source, SourcePosition, Tick, Upsert};
use crate::model::rows::{Cents, Consumption, ConsumptionId, Millis, RegionId, User, UserId};
use crate::model::Time;

/// 2024-01-01T00:00:00 UTC in epoch milliseconds, the default generator clock at row 0.
pub const DEFAULT_START: Millis = 1_704_067_200_000;

/// The tariff, in hundredths of a yuan per kWh: cost = amount × 0.55.
pub const TARIFF_CENTS_PER_KWH: i64 = 55;

/// The largest value a DECIMAL(10,2) holds: 99,999,999.99.
pub const MAX_READING: Cents = 9_999_999_999;

/// What a meter reading loses when it would overflow DECIMAL(10,2): 90,000,000.00.
pub const READING_WRAP: Cents = 9_000_000_000;

/// The usage types of `power_user`.
pub const USAGE_TYPES: [&str; 4] = ["居民", "工业", "商业", "农业"];

/// The remarks of `power_consumption` (one of five equally likely, the fifth being NULL).
const REMARKS: [&str; 4] = ["正常", "抄表补录", "峰时用电", "谷时用电"];

/// The fixed names of the first ten regions.
const REGION_NAMES: [&str; 10] = [
    "东城供电区",
    "西城供电区",
    "南城供电区",
    "北城供电区",
    "高新供电区",
    "开发供电区",
    "滨江供电区",
    "山区供电区",
    "港口供电区",
    "新区供电区",
];

/// The probability that an update of a present user deletes it.
const DELETE_PROBABILITY: f64 = 0.02;

/// The random streams: each row's rng is seeded with `mix(seed, stream, index)`.
const USER_STREAM: u64 = 1;
const CONSUMPTION_STREAM: u64 = 2;
const METER_STREAM: u64 = 3;

/// The options of the generator (SPEC §2).
#[derive(Clone, Debug)]
pub struct GeneratorConfig {
    /// Makes every run reproducible.
    pub seed: u64,
    /// The length of the `user_id` sequence: users are `1..=users`.
    pub users: u64,
    /// Stop after this many consumption rows; `None` = never.
    pub consumptions: Option<u64>,
    /// User rows per generator-clock second.
    pub user_rate: f64,
    /// Consumption rows per generator-clock second.
    pub consumption_rate: f64,
    /// The generator clock at row 0, in epoch milliseconds.
    pub start: Millis,
    /// The generator-clock span of one logical time.
    pub tick: Millis,
    /// Region ids are `1..=regions`.
    pub regions: i32,
    /// `consumption_date` is uniform within this many milliseconds behind the clock.
    pub max_past: Millis,
    /// Whether the user stream goes on with updates after the sequence (`true`), or ends after
    /// inserting `1..=users`, as the source's DataGen does (`false`).
    pub user_updates: bool,
}

impl Default for GeneratorConfig {
    fn default() -> GeneratorConfig {
        GeneratorConfig {
            seed: 0,
            users: 1000,
            consumptions: None,
            user_rate: 1.0,
            consumption_rate: 5.0,
            start: DEFAULT_START,
            tick: 1000,
            regions: 10,
            max_past: 8_640_000,
            user_updates: true,
        }
    }
}

/// The name of a region: the ten fixed names, then `"{id}号供电区"`.
pub fn region_name(region_id: i32) -> String {
    match usize::try_from(region_id) {
        Ok(id @ 1..=10) => REGION_NAMES[id - 1].to_string(),
        _ => format!("{region_id}号供电区"),
    }
}

/// The address of a user in a region: the first two characters of the region name, `路`, the
/// user id and `号` (e.g. `滨江路1号`).
fn address(region_id: RegionId, user_id: UserId) -> String {
    let prefix: String = region_name(region_id).chars().take(2).collect();
    format!("{prefix}路{user_id}号")
}

/// cost = amount × 0.55, rounded half away from zero to hundredths, in integer arithmetic.
pub fn cost_of(amount: Cents) -> Cents {
    let product = amount as i128 * TARIFF_CENTS_PER_KWH as i128;
    let rounded = (product.abs() + 50) / 100;
    (product.signum() * rounded) as Cents
}

/// The meter reading after a row of `amount` on a meter reading `before`.
///
/// A user's reading grows by ~500.00 a row and would pass DECIMAL(10,2)'s 99,999,999.99 after
/// ~10^5 rows of that user; it then wraps back by 90,000,000.00 (a meter rolling over), so on
/// that one row `after = before + amount - 90,000,000.00`.
pub fn advance_meter(before: Cents, amount: Cents) -> Cents {
    let after = before + amount;
    if after > MAX_READING {
        after - READING_WRAP
    } else {
        after
    }
}

/// The splitmix64 finalizer of `x` (after adding the golden-ratio increment).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A splitmix64-style hash of the seed, the stream and the row index.
fn mix(seed: u64, stream: u64, index: u64) -> u64 {
    splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ index)
}

/// The rng of row `index` of `stream`.
fn row_rng(seed: u64, stream: u64, index: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(mix(seed, stream, index))
}

/// The generator time of row `index` of a stream of `rate` rows per second, or `None` if the
/// stream never emits it (a rate that is not positive).
fn emit_time(start: Millis, rate: f64, index: u64) -> Option<Millis> {
    if rate > 0.0 {
        let offset = (index as f64 * 1000.0 / rate).floor();
        (offset < i64::MAX as f64).then(|| start.saturating_add(offset as i64))
    } else {
        None
    }
}

impl UserState {
    /// A freshly (re-)inserted user, drawing usage type, region and phone from `rng`.
    fn fresh(rng: &mut Xoshiro256PlusPlus, regions: i32, time: Millis) -> UserState {
        UserState {
            rename: None,
            usage: rng.random_range(0..USAGE_TYPES.len()),
            region: rng.random_range(1..=regions),
            phone: rng.random_range(0..1_000_000_000),
            create_time: time,
            update_time: time,
        }
    }

    fn row(&self, user_id: UserId) -> User {
        let user_name = match self.rename {
            None => format!("用户{user_id:04}"),
            Some(j) => format!("用户{user_id:04}-{j}"),
        };
        User {
            user_id,
            user_name: Some(user_name),
            usage_type: Some(USAGE_TYPES[self.usage].to_string()),
            region_id: Some(self.region),
            region_name: Some(region_name(self.region)),
            address: Some(address(self.region, user_id)),
            phone: Some(format!("13{:09}", self.phone)),
            create_time: Some(self.create_time),
            update_time: Some(self.update_time),
        }
    }
}

/// One worker's share of the generated input.
pub struct Generator {
    config: GeneratorConfig,
    worker: usize,
    peers: usize,
    position: GeneratorPosition,
}

impl Generator {
    /// The generator of worker `worker` of `peers`.
    ///
    /// Panics on a configuration that cannot generate rows: no users, no regions, a tick that
    /// is not positive, a negative `max_past`, a negative clock, or a bounded consumption
    /// stream with a rate that would never finish it.
    pub fn new(config: GeneratorConfig, worker: usize, peers: usize) -> Generator {
        assert!(
            peers > 0 && worker < peers,
            "worker {worker} of {peers} peers"
        );
        assert!(config.users >= 1, "the generator needs at least one user");
        assert!(
            config.regions >= 1,
            "the generator needs at least one region"
        );
        assert!(
            config.tick > 0,
            "the tick must be a positive number of milliseconds"
        );
        assert!(config.max_past >= 0, "max_past must not be negative");
        assert!(config.start >= 0, "the generator clock starts before 1970");
        assert!(
            config.consumptions.unwrap_or(0) == 0 || config.consumption_rate > 0.0,
            "a bounded consumption stream needs a positive rate"
        );
        let users = usize::try_from(config.users).expect("users fits in memory");
        Generator {
            worker,
            peers,
            position: GeneratorPosition {
                next_tick: 0,
                next_user: 0,
                next_consumption: 0,
                users: vec![None; users],
                meters: vec![None; users],
            },
            config,
        }
    }

    fn owns(&self, user_id: UserId) -> bool {
        owner_of(user_id, self.peers) == self.worker
    }

    /// Applies user row `j`, emitted at `time`, to the user states; returns the row if this
    /// worker owns its user.
    fn user_row(&mut self, j: u64, time: Millis) -> Option<Upsert<UserId, User>> {
        let config = &self.config;
        let mut rng = row_rng(config.seed, USER_STREAM, j);
        let user_id = if j < config.users {
            let user_id = j + 1;
            self.position.users[j as usize] =
                Some(UserState::fresh(&mut rng, config.regions, time));
            user_id
        } else {
            let user_id = rng.random_range(1..=config.users);
            let slot = &mut self.position.users[(user_id - 1) as usize];
            *slot = match *slot {
                None => Some(UserState::fresh(&mut rng, config.regions, time)),
                Some(_) if rng.random_bool(DELETE_PROBABILITY) => None,
                Some(mut state) => {
                    let mut change = rng.random_range(0..3);
                    if change == 0 && config.regions < 2 {
                        change = 1; // no other region to move to: rename instead
                    }
                    match change {
                        0 => {
                            // uniform over the regions other than the current one
                            let region = rng.random_range(1..config.regions);
                            state.region = if region >= state.region {
                                region + 1
                            } else {
                                region
                            };
                        }
                        1 => state.rename = Some(j),
                        _ => {
                            let usage = rng.random_range(0..USAGE_TYPES.len() - 1);
                            state.usage = if usage >= state.usage {
                                usage + 1
                            } else {
                                usage
                            };
                        }
                    }
                    state.update_time = time;
                    Some(state)
                }
            };
            user_id
        };
        let user_id = user_id as UserId;
        self.owns(user_id).then(|| {
            let row = self.position.users[(user_id - 1) as usize].map(|state| state.row(user_id));
            (user_id, row)
        })
    }

    /// Consumption row `i`, emitted at `time`, if this worker owns its user.
    fn consumption_row(
        &mut self,
        i: u64,
        time: Millis,
    ) -> Option<Upsert<ConsumptionId, Consumption>> {
        let config = &self.config;
        let mut rng = row_rng(config.seed, CONSUMPTION_STREAM, i);
        // drawn first, so every worker learns the user of every row cheaply
        let user_id = rng.random_range(1..=config.users) as UserId;
        if !self.owns(user_id) {
            return None;
        }
        let amount: Cents = rng.random_range(100..=99_999);
        let past: Millis = rng.random_range(0..=config.max_past);
        let remark = REMARKS
            .get(rng.random_range(0..=REMARKS.len()))
            .map(|r| r.to_string());
        let seed = config.seed;
        let meter = &mut self.position.meters[(user_id - 1) as usize];
        let before = *meter.get_or_insert_with(|| {
            row_rng(seed, METER_STREAM, user_id as u64).random_range(100_000..=999_999)
        });
        let after = advance_meter(before, amount);
        *meter = Some(after);
        let consumption_id = i as ConsumptionId + 1;
        let row = Consumption {
            consumption_id,
            user_id,
            consumption_amount: amount,
            consumption_cost: cost_of(amount),
            consumption_date: time - past,
            meter_reading_before: Some(before),
            meter_reading_after: Some(after),
            remark,
        };
        Some((consumption_id, Some(row)))
    }
}

impl Source for Generator {
    fn position(&self) -> SourcePosition {
        SourcePosition::Generator(Box::new(self.position.clone()))
    }

    fn resume(&mut self, position: SourcePosition) -> Result<(), PositionError> {
        let SourcePosition::Generator(position) = position else {
            return Err(PositionError::OtherSource {
                position: Box::new(position),
                kind: "the generator",
            });
        };
        if position.users.len() != self.position.users.len() {
            return Err(PositionError::DoesNotFit(format!(
                "the job generated {} users, these options {}",
                position.users.len(),
                self.position.users.len()
            )));
        }
        self.position = *position;
        Ok(())
    }

    fn next_tick(&mut self) -> Option<Tick> {
        let limit = self.config.consumptions;
        if limit.is_some_and(|n| self.position.next_consumption >= n) {
            return None;
        }
        let (start, tick) = (self.config.start, self.config.tick);
        let end = start + (self.position.next_tick as Millis + 1) * tick;

        let mut users = Vec::new();
        let user_rows_end = if self.config.user_updates {
            u64::MAX
        } else {
            self.config.users
        };
        while let Some(time) = emit_time(start, self.config.user_rate, self.position.next_user)
            .filter(|&time| time < end && self.position.next_user < user_rows_end)
        {
            users.extend(self.user_row(self.position.next_user, time));
            self.position.next_user += 1;
        }

        let mut consumption = Vec::new();
        while limit.is_none_or(|n| self.position.next_consumption < n) {
            let i = self.position.next_consumption;
            match emit_time(start, self.config.consumption_rate, i) {
                Some(time) if time < end => consumption.extend(self.consumption_row(i, time)),
                _ => break,
            }
            self.position.next_consumption += 1;
        }

        self.position.next_tick += 1;
        Some(Tick {
            time: end as Time,
            users: last_upsert_wins(users),
            consumption,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap, HashSet};

    /// A small bounded configuration: 40 users inserted in the first two ticks (20 rows/s),
    /// then updates; 2000 consumption rows at 50 rows/s, i.e. 40 ticks of one second.
    fn small() -> GeneratorConfig {
        GeneratorConfig {
            seed: 7,
            users: 40,
            consumptions: Some(2000),
            user_rate: 20.0,
            consumption_rate: 50.0,
            start: DEFAULT_START,
            tick: 1000,
            regions: 10,
            max_past: 60_000,
            user_updates: true,
        }
    }

    /// All ticks of one worker.
    fn run(config: &GeneratorConfig, worker: usize, peers: usize) -> Vec<Tick> {
        let mut generator = Generator::new(config.clone(), worker, peers);
        std::iter::from_fn(|| generator.next_tick()).collect()
    }

    type Merged = BTreeMap<
        Time,
        (
            Vec<Upsert<UserId, User>>,
            Vec<Upsert<ConsumptionId, Consumption>>,
        ),
    >;

    /// The union of every worker's rows, by tick time, rows sorted by key; checks on the way
    /// that all workers produce the same tick times with the same clocks, that every worker
    /// emits only rows of users it owns, and that a key appears at most once in a tick.
    fn merged(config: &GeneratorConfig, peers: usize) -> Merged {
        let runs: Vec<Vec<Tick>> = (0..peers).map(|w| run(config, w, peers)).collect();
        let times: Vec<Time> = runs[0].iter().map(|t| t.time).collect();
        let mut union = Merged::new();
        for (worker, ticks) in runs.iter().enumerate() {
            assert_eq!(ticks.iter().map(|t| t.time).collect::<Vec<_>>(), times);
            for tick in ticks {
                let entry = union.entry(tick.time).or_default();
                for (id, row) in &tick.users {
                    assert_eq!(owner_of(*id, peers), worker);
                    assert!(row.as_ref().is_none_or(|u| u.user_id == *id));
                    entry.0.push((*id, row.clone()));
                }
                for (id, row) in &tick.consumption {
                    let row = row
                        .as_ref()
                        .expect("the generator never deletes consumption");
                    assert_eq!(owner_of(row.user_id, peers), worker);
                    assert_eq!(row.consumption_id, *id);
                    entry.1.push((*id, Some(row.clone())));
                }
            }
        }
        for (users, consumption) in union.values_mut() {
            users.sort();
            consumption.sort();
            let ids: HashSet<_> = users.iter().map(|(id, _)| id).collect();
            assert_eq!(ids.len(), users.len(), "a user twice in one tick");
        }
        union
    }

    fn consumption_rows(merged: &Merged) -> Vec<Consumption> {
        let mut rows: Vec<Consumption> = merged
            .values()
            .flat_map(|(_, c)| c.iter().map(|(_, r)| r.clone().unwrap()))
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn every_worker_count_generates_the_same_rows_at_the_same_times() {
        // the second configuration updates 5 users 50 times a second: many updates of one user
        // in one tick, deletes and re-inserts
        let busy = GeneratorConfig {
            users: 5,
            user_rate: 50.0,
            ..small()
        };
        for config in [small(), busy] {
            let one = merged(&config, 1);
            assert!(one.values().any(|(u, _)| !u.is_empty()));
            assert_eq!(merged(&config, 2), one);
            assert_eq!(merged(&config, 3), one);
        }
    }

    #[test]
    fn ticks_are_consecutive_and_end_with_the_last_consumption_row() {
        let config = small();
        let ticks = run(&config, 0, 1);
        // row 1999 is emitted at start + 1999 * 20 ms = start + 39_980: in tick 39, ending at
        // start + 40_000
        assert_eq!(ticks.len(), 40);
        for (k, tick) in ticks.iter().enumerate() {
            assert_eq!(tick.time, (DEFAULT_START + (k as i64 + 1) * 1000) as Time);
            assert_eq!(tick.consumption.len(), 50);
        }
        // users up to the last tick's end: 40 s at 20 rows/s
        let seen: usize = ticks.iter().map(|t| t.users.len()).sum();
        assert!(seen <= 800 && seen > 40);

        // a worker that owns none of the last rows stops at the same tick
        for peers in [2, 3] {
            for worker in 0..peers {
                assert_eq!(run(&config, worker, peers).len(), 40);
            }
        }

        let none = GeneratorConfig {
            consumptions: Some(0),
            ..small()
        };
        assert!(Generator::new(none, 0, 1).next_tick().is_none());

        // an empty tick is still a tick: 1 row every 2.5 s, 3 rows end in the tick of row 2,
        // emitted at start + 5000
        let sparse = GeneratorConfig {
            consumptions: Some(3),
            consumption_rate: 0.4,
            ..small()
        };
        let ticks = run(&sparse, 0, 1);
        assert_eq!(ticks.len(), 6);
        let sizes: Vec<usize> = ticks.iter().map(|t| t.consumption.len()).collect();
        assert_eq!(sizes, vec![1, 0, 1, 0, 0, 1]);

        let mut unbounded = Generator::new(GeneratorConfig::default(), 0, 1);
        for k in 0..200 {
            let tick = unbounded
                .next_tick()
                .expect("an unbounded generator never stops");
            assert_eq!(tick.time, (DEFAULT_START + (k + 1) * 1000) as Time);
            assert_eq!(tick.consumption.len(), 5);
        }
    }

    #[test]
    fn consumption_ids_are_the_sequence_once_each() {
        let config = small();
        for peers in [1, 2, 3] {
            let ids: Vec<ConsumptionId> = consumption_rows(&merged(&config, peers))
                .iter()
                .map(|r| r.consumption_id)
                .collect();
            assert_eq!(ids, (1..=2000).collect::<Vec<_>>());
        }
    }

    #[test]
    fn meter_readings_are_consistent_per_user() {
        let config = GeneratorConfig {
            users: 7,
            ..small()
        };
        for peers in [1, 3] {
            let mut reading: HashMap<UserId, Cents> = HashMap::new();
            for row in consumption_rows(&merged(&config, peers)) {
                let before = row.meter_reading_before.unwrap();
                let after = row.meter_reading_after.unwrap();
                assert_eq!(after, before + row.consumption_amount);
                match reading.get(&row.user_id) {
                    Some(&previous) => assert_eq!(before, previous),
                    None => assert!((100_000..=999_999).contains(&before)),
                }
                reading.insert(row.user_id, after);
            }
            assert_eq!(reading.len(), 7);
        }
    }

    #[test]
    fn meters_wrap_before_overflowing_decimal_10_2() {
        assert_eq!(advance_meter(100_000, 12_345), 112_345);
        assert_eq!(advance_meter(9_999_999_000, 999), 9_999_999_999);
        // 99,999,999.00 + 10.00 = 100,000,009.00 -> 10,000,009.00
        assert_eq!(advance_meter(9_999_999_900, 1_000), 1_000_000_900);
    }

    #[test]
    fn consumption_rows_have_their_ranges_and_tariff() {
        // 0.55 yuan/kWh, half away from zero: 1.00 -> 0.55, 1.01 -> 0.5555 -> 0.56,
        // 1.10 -> 0.605 -> 0.61, 999.99 -> 549.9945 -> 549.99
        assert_eq!(cost_of(100), 55);
        assert_eq!(cost_of(101), 56);
        assert_eq!(cost_of(110), 61);
        assert_eq!(cost_of(99_999), 54_999);
        assert_eq!(cost_of(-110), -61);

        let config = small();
        let rows = consumption_rows(&merged(&config, 2));
        let mut remarks: HashMap<Option<String>, usize> = HashMap::new();
        for row in &rows {
            assert!((100..=99_999).contains(&row.consumption_amount));
            let exact = row.consumption_amount * 55; // ten-thousandths
            assert!((row.consumption_cost * 100 - exact).abs() <= 50);
            assert_ne!(row.consumption_cost * 100 - exact, -50, "halves round up");
            assert!((1..=40).contains(&row.user_id));
            // row i is emitted at start + 20 i ms at 50 rows/s
            let emitted = DEFAULT_START + (row.consumption_id - 1) * 20;
            assert!(row.consumption_date <= emitted);
            assert!(row.consumption_date >= emitted - config.max_past);
            *remarks.entry(row.remark.clone()).or_default() += 1;
        }
        assert_eq!(remarks.len(), 5, "four remarks and NULL: {remarks:?}");
        assert!(
            remarks.values().all(|&n| n > 300),
            "about 400 each: {remarks:?}"
        );
    }

    #[test]
    fn consumption_dates_lie_within_max_past_of_their_tick() {
        let config = GeneratorConfig {
            max_past: 8_640_000,
            ..small()
        };
        for (time, (_, consumption)) in merged(&config, 3) {
            for (_, row) in consumption {
                let date = row.unwrap().consumption_date;
                assert!(date < time as Millis);
                assert!(date >= time as Millis - 1000 - 8_640_000);
            }
        }
    }

    #[test]
    fn users_are_inserted_in_order_then_updated_deleted_and_reinserted() {
        // one user row per tick (20 rows/s, ticks of 50 ms), so every row is visible
        let config = GeneratorConfig {
            tick: 50,
            consumptions: Some(3000),
            ..small()
        };
        let ticks = run(&config, 0, 1);
        let rows: Vec<(Time, Upsert<UserId, User>)> = ticks
            .iter()
            .flat_map(|t| t.users.iter().map(move |u| (t.time, u.clone())))
            .collect();
        // 3000 consumption rows take 60 s: 1200 user rows
        assert_eq!(rows.len(), 1200);
        let mut current: HashMap<UserId, User> = HashMap::new();
        let (mut updates, mut deletes, mut reinserts) = (0, 0, 0);
        for (j, (time, (id, row))) in rows.into_iter().enumerate() {
            let emitted = DEFAULT_START + j as i64 * 50;
            assert_eq!(time as Millis, emitted + 50);
            if j < 40 {
                let user = row.expect("the first rows insert");
                assert_eq!(id, j as i64 + 1);
                assert_eq!(
                    user.user_name.as_deref(),
                    Some(format!("用户{:04}", id).as_str())
                );
                assert_eq!(
                    (user.create_time, user.update_time),
                    (Some(emitted), Some(emitted))
                );
                check_user(&user);
                current.insert(id, user);
                continue;
            }
            assert!((1..=40).contains(&id));
            match (current.remove(&id), row) {
                (Some(_), None) => deletes += 1,
                (None, None) => panic!("user {id} deleted twice"),
                (None, Some(user)) => {
                    reinserts += 1;
                    assert_eq!(
                        user.user_name.as_deref(),
                        Some(format!("用户{:04}", id).as_str())
                    );
                    assert_eq!(
                        (user.create_time, user.update_time),
                        (Some(emitted), Some(emitted))
                    );
                    check_user(&user);
                    current.insert(id, user);
                }
                (Some(old), Some(user)) => {
                    updates += 1;
                    check_user(&user);
                    assert_eq!(user.create_time, old.create_time);
                    assert_eq!(user.update_time, Some(emitted));
                    assert_eq!(user.phone, old.phone);
                    let renamed = user.user_name != old.user_name;
                    let moved = user.region_id != old.region_id;
                    let retyped = user.usage_type != old.usage_type;
                    assert_eq!([renamed, moved, retyped].iter().filter(|&&c| c).count(), 1);
                    if renamed {
                        let name = format!("用户{:04}-{}", id, j);
                        assert_eq!(user.user_name.as_deref(), Some(name.as_str()));
                    }
                    current.insert(id, user);
                }
            }
        }
        // 1160 changes, 2% deletes: about 23; a deleted user comes back at its next row
        assert!(
            deletes > 5 && reinserts > 0 && updates > 1000,
            "{updates} {deletes} {reinserts}"
        );
    }

    /// The attributes of a generated user row are well formed and consistent.
    fn check_user(user: &User) {
        let region = user.region_id.unwrap();
        assert!((1..=10).contains(&region));
        assert_eq!(user.region_name, Some(region_name(region)));
        let prefix: String = region_name(region).chars().take(2).collect();
        assert_eq!(
            user.address,
            Some(format!("{}路{}号", prefix, user.user_id))
        );
        assert!(USAGE_TYPES.contains(&user.usage_type.as_deref().unwrap()));
        let phone = user.phone.as_deref().unwrap();
        assert!(phone.len() == 11 && phone.starts_with("13"));
        assert!(phone.chars().all(|c| c.is_ascii_digit()));
    }

    #[test]
    fn regions_have_fixed_names() {
        assert_eq!(region_name(1), "东城供电区");
        assert_eq!(region_name(7), "滨江供电区");
        assert_eq!(region_name(10), "新区供电区");
        assert_eq!(region_name(11), "11号供电区");
        assert_eq!(address(7, 1), "滨江路1号");
        assert_eq!(address(12, 5), "12路5号");
    }

    #[test]
    fn a_generator_resumed_from_its_position_goes_on_exactly_as_one_never_stopped() {
        let config = GeneratorConfig {
            users: 5,
            user_rate: 50.0,
            ..small()
        };
        for (worker, peers) in [(0, 1), (1, 2)] {
            let uninterrupted = run(&config, worker, peers);
            let mut first = Generator::new(config.clone(), worker, peers);
            let head: Vec<Tick> = (0..17).map_while(|_| first.next_tick()).collect();
            let mut resumed = Generator::new(config.clone(), worker, peers);
            resumed.resume(first.position()).unwrap();
            let tail: Vec<Tick> = std::iter::from_fn(|| resumed.next_tick()).collect();
            assert_eq!([head, tail].concat(), uninterrupted);
        }
        let other = GeneratorConfig {
            users: 6,
            ..small()
        };
        let position = Generator::new(config, 0, 1).position();
        assert!(Generator::new(other, 0, 1).resume(position).is_err());
    }

    #[test]
    fn the_seed_changes_the_rows() {
        let a = consumption_rows(&merged(&small(), 1));
        let b = consumption_rows(&merged(&GeneratorConfig { seed: 8, ..small() }, 1));
        assert_ne!(a, b);
        assert_eq!(a, consumption_rows(&merged(&small(), 1)));
    }

    #[test]
    fn without_updates_the_user_stream_ends_after_the_sequence() {
        let config = GeneratorConfig {
            user_updates: false,
            ..small()
        };
        let mut ids = Vec::new();
        for (_, (users, _)) in merged(&config, 2) {
            ids.extend(users.iter().map(|(id, row)| (*id, row.is_some())));
        }
        ids.sort();
        let expected: Vec<(UserId, bool)> = (1..=40).map(|id| (id, true)).collect();
        assert_eq!(ids, expected);
    }
}
