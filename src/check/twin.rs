//! The plain batch twin of every warehouse layer: ordinary Rust over the current ODS state, with
//! no dataflow, no incrementality and no shared code with [`crate::dataflows`] beyond the row
//! types and the helpers of [`crate::model::rows`].
//!
//! Tests use [`recompute`] as the independent oracle: after any sequence of ODS changes, the
//! dataflow's output must equal what this module computes from scratch (SPEC §3), processing-time
//! columns left out.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use crate::model::rows::{
    average_cents, hour_of_day, window_start, Cents, Consumption, ConsumptionId, Dashboard, Detail,
    Dim, Fact, Millis, RegionId, RegionStats, User, UserId, UserRanking,
};
use crate::model::{TableRow, Warehouse};

/// Recomputes every layer from the ODS state (users by user_id, consumption by consumption_id),
/// windows of `window` ms.
pub fn recompute(
    users: &BTreeMap<UserId, User>,
    consumption: &BTreeMap<ConsumptionId, Consumption>,
    window: Millis,
) -> Warehouse {
    let details = details(users, consumption);
    let region_stats = region_stats(&details, window);
    let rankings = rankings(&details, window);
    let dashboards = dashboards(&region_stats, &rankings);
    Warehouse {
        users: users.values().cloned().collect(),
        consumption: consumption.values().cloned().collect(),
        details,
        region_stats,
        rankings,
        dashboards,
    }
}

/// The batch twin of a whole job under retention (SPEC §4a), followed tick by tick: users,
/// the consumption rows of live windows, and the rows frozen windows left behind.
///
/// Window `[s, s + w)` freezes at the first logical time `t >= s + w + horizon`. At each tick
/// the windows that froze since the previous tick keep the rows they had at that tick, their
/// consumption rows leave the state, and then the tick's upserts apply: the last upsert of a key
/// in the tick wins, a row for a frozen window is expired (counted, not applied), and a delete of
/// a key the state does not hold changes nothing. Without a horizon this is [`recompute`] over
/// the upserts seen so far.
#[derive(Clone, Debug)]
pub struct RetainedJob {
    window: Millis,
    horizon: Option<Millis>,
    users: BTreeMap<UserId, User>,
    live: BTreeMap<ConsumptionId, Consumption>,
    /// The ids of the live rows of each window, by window start: the windows that freeze next
    /// come first.
    by_window: BTreeMap<Millis, BTreeSet<ConsumptionId>>,
    /// The rows of frozen windows, as they were at the last tick before each froze, in the
    /// order the windows froze (unsorted: [`RetainedJob::tables`] sorts) — the ODS and DWD rows
    /// that live rows of their ids replaced included.
    frozen: Warehouse,
    /// The positions in `frozen` of each id's frozen ODS and DWD rows still in the tables.
    kept_frozen: BTreeMap<ConsumptionId, (usize, usize)>,
    /// The positions in `frozen` of the ODS and DWD rows live rows of their ids replaced.
    replaced: (BTreeSet<usize>, BTreeSet<usize>),
    /// The changes of the frozen rows not taken yet ([`RetainedJob::take_frozen_changes`]), in
    /// order: rows of windows as they froze (+1), and the ODS and DWD rows of ids that came
    /// back (-1).
    frozen_changes: Vec<(TableRow, isize)>,
    /// Arriving consumption rows whose window was already frozen.
    pub expired: u64,
}

impl RetainedJob {
    /// A job with no input yet, windows of `window` ms, and a horizon (or none).
    pub fn new(window: Millis, horizon: Option<Millis>) -> RetainedJob {
        RetainedJob {
            window,
            horizon,
            users: BTreeMap::new(),
            live: BTreeMap::new(),
            by_window: BTreeMap::new(),
            frozen: Warehouse::default(),
            kept_frozen: BTreeMap::new(),
            replaced: (BTreeSet::new(), BTreeSet::new()),
            frozen_changes: Vec::new(),
            expired: 0,
        }
    }

    /// Whether the window holding `date` (or starting at it) is frozen at `time`.
    fn frozen_at(&self, date: Millis, time: u64) -> bool {
        frozen_at(self.window, self.horizon, date, time)
    }

    /// Applies the upserts of one tick at logical `time` (later than every earlier tick's) and
    /// returns every table after it, each sorted as [`recompute`] sorts them.
    pub fn tick(
        &mut self,
        time: u64,
        users: &[(UserId, Option<User>)],
        consumption: &[(ConsumptionId, Option<Consumption>)],
    ) -> Warehouse {
        self.advance(time, users, consumption);
        self.tables()
    }

    /// Applies the upserts of one tick at logical `time`, as [`RetainedJob::tick`] does, without
    /// computing the tables: its cost is that of the tick's rows and of the windows that freeze
    /// at it, so a caller can look at only some ticks' tables.
    pub fn advance(
        &mut self,
        time: u64,
        users: &[(UserId, Option<User>)],
        consumption: &[(ConsumptionId, Option<Consumption>)],
    ) {
        // Windows frozen since the previous tick keep that tick's rows: every table partitions
        // by window, so those are the tables of the previous tick's state restricted to the
        // freezing windows' rows.
        let mut freezing = BTreeMap::new();
        let (window, horizon) = (self.window, self.horizon);
        while let Some(entry) = self.by_window.first_entry() {
            if !frozen_at(window, horizon, *entry.key(), time) {
                break;
            }
            for id in entry.remove() {
                if let Some(row) = self.live.remove(&id) {
                    freezing.insert(id, row);
                }
            }
        }
        if !freezing.is_empty() {
            let last = recompute(&self.users, &freezing, self.window);
            let (consumption, details) = (self.frozen.consumption.len(), self.frozen.details.len());
            for (offset, c) in last.consumption.iter().enumerate() {
                self.kept_frozen.entry(c.consumption_id).or_default().0 = consumption + offset;
            }
            for (offset, d) in last.details.iter().enumerate() {
                self.kept_frozen.entry(d.fact.consumption_id).or_default().1 = details + offset;
            }
            let changes = &mut self.frozen_changes;
            let gained = last.consumption.iter().cloned().map(TableRow::Consumption);
            let gained = gained.chain(last.details.iter().cloned().map(TableRow::Detail));
            let gained = gained.chain(last.region_stats.iter().cloned().map(TableRow::RegionStats));
            let gained = gained.chain(last.rankings.iter().cloned().map(TableRow::Ranking));
            let gained = gained.chain(last.dashboards.iter().cloned().map(TableRow::Dashboard));
            changes.extend(gained.map(|row| (row, 1)));
            let frozen = &mut self.frozen;
            frozen.consumption.extend(last.consumption);
            frozen.details.extend(last.details);
            frozen.region_stats.extend(last.region_stats);
            frozen.rankings.extend(last.rankings);
            frozen.dashboards.extend(last.dashboards);
        }

        // The tick's upserts, the last of each key winning.
        let last_users: BTreeMap<UserId, &Option<User>> =
            users.iter().map(|(id, row)| (*id, row)).collect();
        for (id, row) in last_users {
            match row {
                Some(user) => self.users.insert(id, user.clone()),
                None => self.users.remove(&id),
            };
        }
        let last_consumption: BTreeMap<ConsumptionId, &Option<Consumption>> =
            consumption.iter().map(|(id, row)| (*id, row)).collect();
        for (id, row) in last_consumption {
            match row {
                Some(c) if self.frozen_at(c.consumption_date, time) => self.expired += 1,
                Some(c) => {
                    self.remove_live(id);
                    self.replace_frozen(id);
                    let start = window_start(c.consumption_date, self.window);
                    self.by_window.entry(start).or_default().insert(id);
                    self.live.insert(id, c.clone());
                }
                None => self.remove_live(id),
            }
        }
    }

    /// Outside the dataflow every table stays keyed: a live row of an id whose row froze
    /// replaces the frozen ODS and DWD rows (SPEC §4a).
    fn replace_frozen(&mut self, id: ConsumptionId) {
        let Some((consumption, detail)) = self.kept_frozen.remove(&id) else {
            return;
        };
        self.replaced.0.insert(consumption);
        self.replaced.1.insert(detail);
        let changes = &mut self.frozen_changes;
        let row = self.frozen.consumption[consumption].clone();
        changes.push((TableRow::Consumption(row), -1));
        changes.push((TableRow::Detail(self.frozen.details[detail].clone()), -1));
    }

    /// Removes a live consumption row, if there is one.
    fn remove_live(&mut self, id: ConsumptionId) {
        if let Some(old) = self.live.remove(&id) {
            let start = window_start(old.consumption_date, self.window);
            if let Some(ids) = self.by_window.get_mut(&start) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_window.remove(&start);
                }
            }
        }
    }

    /// Every table after the last tick, each sorted as [`recompute`] sorts them: the tables of
    /// the live state and the rows frozen windows kept — but for the ODS and DWD rows that live
    /// rows of their ids replaced (every table stays keyed, SPEC §4a).
    pub fn tables(&self) -> Warehouse {
        let mut tables = self.live_tables();
        let frozen = &self.frozen;
        let replaced = &self.replaced.0;
        let consumption = frozen.consumption.iter().enumerate();
        let consumption = consumption.filter(|(position, _)| !replaced.contains(position));
        tables
            .consumption
            .extend(consumption.map(|(_, row)| row.clone()));
        let details = self.frozen_details().filter(|(_, kept)| *kept);
        tables.details.extend(details.map(|(row, _)| row.clone()));
        tables
            .region_stats
            .extend(frozen.region_stats.iter().cloned());
        tables.rankings.extend(frozen.rankings.iter().cloned());
        tables.dashboards.extend(frozen.dashboards.iter().cloned());
        tables.consumption.sort();
        tables.details.sort();
        tables.region_stats.sort();
        tables.rankings.sort();
        tables.dashboards.sort();
        tables
    }

    /// The tables of the live state alone (users, and the live windows' rows), recomputed.
    pub fn live_tables(&self) -> Warehouse {
        recompute(&self.users, &self.live, self.window)
    }

    /// The rows frozen windows kept, as each window froze, in the order they froze — the ODS
    /// and DWD rows live rows of their ids replaced since included: what the frozen windows'
    /// DWS and ADS rows were computed from.
    pub fn frozen(&self) -> &Warehouse {
        &self.frozen
    }

    /// The frozen windows' DWD rows, each with whether the table still holds it (a live row of
    /// its id has not replaced it).
    pub fn frozen_details(&self) -> impl Iterator<Item = (&Detail, bool)> {
        let replaced = &self.replaced.1;
        let details = self.frozen.details.iter().enumerate();
        details.map(move |(position, detail)| (detail, !replaced.contains(&position)))
    }

    /// The changes of [`RetainedJob::frozen`] since the last call, in order: rows of windows as
    /// they froze (+1), and ODS and DWD rows live rows of their ids replaced (-1).
    pub fn take_frozen_changes(&mut self) -> Vec<(TableRow, isize)> {
        std::mem::take(&mut self.frozen_changes)
    }

    /// The maintained ODS state: the current users.
    pub fn users(&self) -> &BTreeMap<UserId, User> {
        &self.users
    }

    /// The maintained ODS state: the consumption rows of live windows.
    pub fn live_consumption(&self) -> &BTreeMap<ConsumptionId, Consumption> {
        &self.live
    }

    /// Whether the window holding `date` is frozen at logical `time` under this job's retention.
    pub fn is_frozen(&self, date: Millis, time: u64) -> bool {
        self.frozen_at(date, time)
    }

    /// The size of the windows, in milliseconds.
    pub fn window(&self) -> Millis {
        self.window
    }

    /// How long after its end a window stays live (`None`: forever).
    pub fn horizon(&self) -> Option<Millis> {
        self.horizon
    }
}

/// Whether the window of `window` ms holding `date` is frozen at logical `time`.
fn frozen_at(window: Millis, horizon: Option<Millis>, date: Millis, time: u64) -> bool {
    match horizon {
        None => false,
        Some(horizon) => {
            let freeze = window_start(date, window) + window + horizon;
            (time as i128) >= freeze as i128
        }
    }
}

/// DWD: every consumption row LEFT JOINed with its current user row, COALESCE defaults applied.
fn details(
    users: &BTreeMap<UserId, User>,
    consumption: &BTreeMap<ConsumptionId, Consumption>,
) -> Vec<Detail> {
    let mut details: Vec<Detail> = consumption
        .values()
        .map(|c| Detail {
            fact: Fact::from(c),
            dim: Dim::of(users.get(&c.user_id)),
        })
        .collect();
    details.sort();
    details
}

/// Groups details by a key; every group is non-empty.
fn group_by<K: Ord>(details: &[Detail], key: impl Fn(&Detail) -> K) -> BTreeMap<K, Vec<&Detail>> {
    let mut groups: BTreeMap<K, Vec<&Detail>> = BTreeMap::new();
    for d in details {
        groups.entry(key(d)).or_default().push(d);
    }
    groups
}

/// The hour of day with the largest summed amount among `rows`; ties go to the earliest hour.
fn peak_hour(rows: &[&Detail]) -> u32 {
    let mut by_hour: BTreeMap<u32, Cents> = BTreeMap::new();
    for d in rows {
        *by_hour.entry(hour_of_day(d.fact.date)).or_default() += d.fact.amount;
    }
    by_hour
        .into_iter()
        .min_by_key(|&(hour, sum)| (Reverse(sum), hour))
        .map_or(0, |(hour, _)| hour)
}

/// DWS `dws_region_daily_stats`, keyed by (region_id, stat_date), plus each group's peak hour.
fn region_stats(details: &[Detail], window: Millis) -> Vec<RegionStats> {
    group_by(details, |d| {
        (d.dim.region_id, window_start(d.fact.date, window))
    })
    .into_iter()
    .map(|((region_id, stat_date), rows)| {
        let amounts = || rows.iter().map(|d| d.fact.amount);
        let total_consumption: Cents = amounts().sum();
        let users: BTreeSet<UserId> = rows.iter().map(|d| d.fact.user_id).collect();
        RegionStats {
            region_id,
            stat_date,
            region_name: rows
                .iter()
                .map(|d| &d.dim.region_name)
                .max()
                .cloned()
                .unwrap_or_default(),
            total_consumption,
            total_cost: rows.iter().map(|d| d.fact.cost).sum(),
            user_count: users.len() as i64,
            avg_consumption: average_cents(total_consumption, rows.len() as i64),
            max_consumption: amounts().max().unwrap_or_default(),
            min_consumption: amounts().min().unwrap_or_default(),
            peak_hour: peak_hour(&rows),
        }
    })
    .collect()
}

/// DWS `dws_user_ranking`, keyed by (user_id, stat_date), ranked within (stat_date, region_id).
fn rankings(details: &[Detail], window: Millis) -> Vec<UserRanking> {
    let mut by_region: BTreeMap<(Millis, RegionId), Vec<UserRanking>> = BTreeMap::new();
    for ((user_id, stat_date), rows) in group_by(details, |d| {
        (d.fact.user_id, window_start(d.fact.date, window))
    }) {
        // All rows of one user joined the same current user row, so they share one dim.
        let dim = &rows[0].dim;
        let row = UserRanking {
            user_id,
            stat_date,
            user_name: dim.user_name.clone(),
            region_id: dim.region_id,
            region_name: dim.region_name.clone(),
            total_consumption: rows.iter().map(|d| d.fact.amount).sum(),
            total_cost: rows.iter().map(|d| d.fact.cost).sum(),
            ranking: 0,
        };
        by_region
            .entry((stat_date, dim.region_id))
            .or_default()
            .push(row);
    }
    let mut rankings = Vec::new();
    for mut group in by_region.into_values() {
        group.sort_by_key(|r| (Reverse(r.total_consumption), r.user_id));
        for (i, mut row) in group.into_iter().enumerate() {
            row.ranking = i as u64 + 1;
            rankings.push(row);
        }
    }
    rankings.sort();
    rankings
}

/// ADS `ads_power_dashboard`: one row per region window, with its rank-1 user.
fn dashboards(region_stats: &[RegionStats], rankings: &[UserRanking]) -> Vec<Dashboard> {
    let top: BTreeMap<(RegionId, Millis), &UserRanking> = rankings
        .iter()
        .filter(|r| r.ranking == 1)
        .map(|r| ((r.region_id, r.stat_date), r))
        .collect();
    region_stats
        .iter()
        .map(|s| {
            // Every region window holds at least one row, whose user ranks in that same
            // (stat_date, region_id) group, so that group has a rank-1 row.
            let top = top[&(s.region_id, s.stat_date)];
            Dashboard {
                region_id: s.region_id,
                stat_date: s.stat_date,
                region_name: s.region_name.clone(),
                total_consumption: s.total_consumption,
                total_cost: s.total_cost,
                user_count: s.user_count,
                avg_consumption: s.avg_consumption,
                peak_hour: s.peak_hour,
                peak_consumption: s.max_consumption,
                top_user_id: top.user_id,
                top_user_name: top.user_name.clone(),
                top_user_consumption: top.total_consumption,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{reading, user};
    use crate::model::rows::{
        UNKNOWN_REGION_ID, UNKNOWN_REGION_NAME, UNKNOWN_USAGE_TYPE, UNKNOWN_USER_NAME,
    };

    const SECOND: Millis = 1_000;
    const HOUR: Millis = 3_600_000;
    const DAY: Millis = 24 * HOUR;

    fn users(rows: Vec<User>) -> BTreeMap<UserId, User> {
        rows.into_iter().map(|u| (u.user_id, u)).collect()
    }

    fn readings(rows: Vec<Consumption>) -> BTreeMap<ConsumptionId, Consumption> {
        rows.into_iter().map(|c| (c.consumption_id, c)).collect()
    }

    #[test]
    fn a_reading_without_a_user_joins_the_unknown_defaults() {
        let w = recompute(
            &BTreeMap::new(),
            &readings(vec![reading(1, 42, 150, 7 * SECOND)]),
            5 * SECOND,
        );
        assert_eq!(w.details.len(), 1);
        let dim = &w.details[0].dim;
        assert_eq!(&*dim.user_name, "未知用户");
        assert_eq!(dim.region_id, 0);
        assert_eq!(&*dim.region_name, "未知地区");
        assert_eq!(&*dim.usage_type, "未知");
        assert_eq!(
            (
                UNKNOWN_USER_NAME,
                UNKNOWN_REGION_ID,
                UNKNOWN_REGION_NAME,
                UNKNOWN_USAGE_TYPE
            ),
            ("未知用户", 0, "未知地区", "未知")
        );
        assert_eq!(
            w.region_stats,
            vec![RegionStats {
                region_id: 0,
                stat_date: 5 * SECOND,
                region_name: "未知地区".into(),
                total_consumption: 150,
                total_cost: 300,
                user_count: 1,
                avg_consumption: 150,
                max_consumption: 150,
                min_consumption: 150,
                peak_hour: 0,
            }]
        );
        assert_eq!(
            w.rankings,
            vec![UserRanking {
                user_id: 42,
                stat_date: 5 * SECOND,
                user_name: "未知用户".into(),
                region_id: 0,
                region_name: "未知地区".into(),
                total_consumption: 150,
                total_cost: 300,
                ranking: 1,
            }]
        );
        assert_eq!(
            w.dashboards,
            vec![Dashboard {
                region_id: 0,
                stat_date: 5 * SECOND,
                region_name: "未知地区".into(),
                total_consumption: 150,
                total_cost: 300,
                user_count: 1,
                avg_consumption: 150,
                peak_hour: 0,
                peak_consumption: 150,
                top_user_id: 42,
                top_user_name: "未知用户".into(),
                top_user_consumption: 150,
            }]
        );
    }

    #[test]
    fn a_user_moved_to_another_region_moves_its_region_stats() {
        let c = readings(vec![reading(1, 1, 100, 0), reading(2, 1, 200, SECOND)]);
        let before = recompute(&users(vec![user(1, "a", 10, "东区")]), &c, 5 * SECOND);
        let keys = |w: &Warehouse| -> Vec<(RegionId, String, Cents)> {
            w.region_stats
                .iter()
                .map(|s| (s.region_id, s.region_name.to_string(), s.total_consumption))
                .collect()
        };
        assert_eq!(keys(&before), vec![(10, "东区".to_string(), 300)]);
        let after = recompute(&users(vec![user(1, "a", 20, "西区")]), &c, 5 * SECOND);
        assert_eq!(keys(&after), vec![(20, "西区".to_string(), 300)]);
        assert_eq!(after.rankings[0].region_id, 20);
        assert_eq!(after.dashboards[0].region_id, 20);
        assert!(after.details.iter().all(|d| d.dim.region_id == 20));
    }

    #[test]
    fn ranking_ties_go_to_the_smaller_user_id() {
        let u = users(vec![
            user(1, "a", 10, "东区"),
            user(2, "b", 10, "东区"),
            user(3, "c", 10, "东区"),
        ]);
        // Users 3 and 2 tie at 5.00, user 1 has 3.00 (in two readings).
        let c = readings(vec![
            reading(1, 3, 500, 0),
            reading(2, 2, 500, SECOND),
            reading(3, 1, 100, 2 * SECOND),
            reading(4, 1, 200, 3 * SECOND),
        ]);
        let w = recompute(&u, &c, 5 * SECOND);
        let ranks: Vec<(UserId, Cents, u64)> = w
            .rankings
            .iter()
            .map(|r| (r.user_id, r.total_consumption, r.ranking))
            .collect();
        assert_eq!(ranks, vec![(1, 300, 3), (2, 500, 1), (3, 500, 2)]);
        assert_eq!(w.dashboards.len(), 1);
        assert_eq!(w.dashboards[0].top_user_id, 2);
        assert_eq!(&*w.dashboards[0].top_user_name, "b");
        assert_eq!(w.dashboards[0].top_user_consumption, 500);
        assert_eq!(w.region_stats[0].user_count, 3);
        assert_eq!(w.region_stats[0].total_consumption, 1300);
        assert_eq!(w.region_stats[0].max_consumption, 500);
        assert_eq!(w.region_stats[0].min_consumption, 100);
    }

    #[test]
    fn rankings_restart_per_region_and_window() {
        let u = users(vec![user(1, "a", 10, "东区"), user(2, "b", 20, "西区")]);
        let c = readings(vec![
            reading(1, 1, 100, 0),
            reading(2, 2, 50, 0),
            reading(3, 1, 10, 5 * SECOND),
        ]);
        let w = recompute(&u, &c, 5 * SECOND);
        let ranks: Vec<(UserId, Millis, u64)> = w
            .rankings
            .iter()
            .map(|r| (r.user_id, r.stat_date, r.ranking))
            .collect();
        assert_eq!(ranks, vec![(1, 0, 1), (1, 5 * SECOND, 1), (2, 0, 1)]);
        let dash: Vec<(RegionId, Millis, UserId)> = w
            .dashboards
            .iter()
            .map(|d| (d.region_id, d.stat_date, d.top_user_id))
            .collect();
        assert_eq!(dash, vec![(10, 0, 1), (10, 5 * SECOND, 1), (20, 0, 2)]);
    }

    #[test]
    fn region_name_is_the_greatest_of_the_group() {
        // Inconsistent input: two users claim region 10 under different names.
        let u = users(vec![user(1, "a", 10, "Alpha"), user(2, "b", 10, "Beta")]);
        let c = readings(vec![reading(1, 1, 100, 0), reading(2, 2, 100, 0)]);
        let w = recompute(&u, &c, 5 * SECOND);
        assert_eq!(w.region_stats.len(), 1);
        assert_eq!(&*w.region_stats[0].region_name, "Beta");
        assert_eq!(&*w.dashboards[0].region_name, "Beta");
    }

    #[test]
    fn peak_hour_ties_go_to_the_earliest_hour() {
        let u = users(vec![user(1, "a", 10, "东区")]);
        // Hour 9 sums to 3.00 in two readings, hour 3 to 3.00 in one, hour 5 to 1.00.
        let c = readings(vec![
            reading(1, 1, 100, 9 * HOUR),
            reading(2, 1, 200, 9 * HOUR + 59 * 60 * SECOND),
            reading(3, 1, 300, 3 * HOUR + 1),
            reading(4, 1, 100, 5 * HOUR),
        ]);
        let w = recompute(&u, &c, DAY);
        assert_eq!(w.region_stats.len(), 1);
        assert_eq!(w.region_stats[0].peak_hour, 3);
        assert_eq!(w.dashboards[0].peak_hour, 3);
        assert_eq!(w.dashboards[0].peak_consumption, 300);
        // One more cent in hour 9 makes it the peak.
        let mut c = c;
        c.insert(5, reading(5, 1, 1, 9 * HOUR + 1));
        let w = recompute(&u, &c, DAY);
        assert_eq!(w.region_stats[0].peak_hour, 9);
    }

    #[test]
    fn averages_round_half_away_from_zero() {
        let u = users(vec![user(1, "a", 10, "东区")]);
        // (0.01 + 0.02) / 2 = 0.015 -> 0.02.
        let c = readings(vec![reading(1, 1, 1, 0), reading(2, 1, 2, SECOND)]);
        let w = recompute(&u, &c, 5 * SECOND);
        assert_eq!(w.region_stats[0].avg_consumption, 2);
        assert_eq!(w.dashboards[0].avg_consumption, 2);
        // (1.00 + 1.00 + 2.00) / 3 = 1.3333 -> 1.33.
        let c = readings(vec![
            reading(1, 1, 100, 0),
            reading(2, 1, 100, SECOND),
            reading(3, 1, 200, 2 * SECOND),
        ]);
        let w = recompute(&u, &c, 5 * SECOND);
        assert_eq!(w.region_stats[0].avg_consumption, 133);
    }

    #[test]
    fn ods_tables_are_copied_in_key_order() {
        let u = users(vec![user(2, "b", 10, "东区"), user(1, "a", 10, "东区")]);
        let c = readings(vec![reading(7, 2, 1, 0), reading(3, 1, 1, 0)]);
        let w = recompute(&u, &c, 5 * SECOND);
        assert_eq!(
            w.users.iter().map(|u| u.user_id).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(
            w.consumption
                .iter()
                .map(|c| c.consumption_id)
                .collect::<Vec<_>>(),
            vec![3, 7]
        );
        assert_eq!(
            w.details
                .iter()
                .map(|d| d.fact.consumption_id)
                .collect::<Vec<_>>(),
            vec![3, 7]
        );
        assert_eq!(
            recompute(&BTreeMap::new(), &BTreeMap::new(), SECOND),
            Warehouse::default()
        );
    }
}
