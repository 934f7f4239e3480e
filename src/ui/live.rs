//! The control room's view of the warehouse (`/api/dashboard`): the `ads_power_dashboard` rows
//! of the latest windows, the top users of each region, the peak-hour heat map and the share
//! of consumption still booked to unknown users (region 0).
//!
//! It is fed by an exit of its own (`src/ui/exits.rs`) as soon as the dataflow completes a
//! logical time — not after it is durable, as the database sinks are — so the screen is as
//! current as the dataflow. Its memory is bounded: the rows of the windows that start within
//! [`LATEST_WINDOWS`] window lengths of the newest one, and per region a handful of running
//! sums over every window. The sums are additive ([`RegionDelta`]), so each worker folds its
//! own share of the changes into them and only the deltas travel.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use serde::Deserialize;

use crate::model::rows::{Cents, Dashboard, Millis, RegionId, UserRanking, UNKNOWN_REGION_ID};
use crate::model::values::dashboard_id;
use crate::model::values::{format_cents, format_millis};
use crate::model::TableRow;
use crate::model::Time;

/// How many windows the view keeps rows of: those starting within this many window lengths of
/// the newest window (the newest included).
pub const LATEST_WINDOWS: i64 = 12;

/// How many users of each region's ranking the view shows.
pub const TOP_USERS: u64 = 5;

/// Points of the unknown-share history kept; when full, every other point is dropped, so the
/// history always spans the whole job at an even spacing.
const SHARE_HISTORY: usize = 512;

/// The live view, shared between worker 0 (which applies changes) and the web UI (which reads).
pub type SharedLive = Arc<Mutex<LiveDashboard>>;

/// What the control room shows, maintained from the changes of completed logical times.
#[derive(Debug, Default)]
pub struct LiveDashboard {
    /// The window length (ms).
    window: Millis,
    /// The latest completed logical time applied.
    time: Option<Time>,
    /// Dashboard rows of the latest windows, by window and region.
    rows: BTreeMap<Millis, BTreeMap<RegionId, Dashboard>>,
    /// The top ranking rows of the latest windows, by window, region and rank.
    top: BTreeMap<Millis, BTreeMap<(RegionId, u64), UserRanking>>,
    /// Over every window: per region, the summed consumption, the windows with rows, and the
    /// windows whose peak hour is each hour.
    regions: BTreeMap<RegionId, RegionTotals>,
    /// The unknown-user share after completed logical times, oldest first: (time, share).
    share_history: Vec<(Time, f64)>,
    /// Record every `share_stride`-th completed time (doubled whenever the history fills).
    share_stride: u64,
    times_applied: u64,
}

/// One region's running sums over every window of `ads_power_dashboard`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct RegionTotals {
    name: String,
    consumption: Cents,
    windows: i64,
    peak_hours: [i64; 24],
}

/// How a set of dashboard changes moves one region's sums: they add up, in any order and on
/// any worker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionDelta {
    /// The region's name, as the latest inserted row among the changes has it.
    pub name: Option<String>,
    pub consumption: Cents,
    pub windows: i64,
    pub peak_hours: [i64; 24],
}

impl RegionDelta {
    /// Adds a dashboard row's change.
    pub fn add(&mut self, row: &Dashboard, diff: isize) {
        let diff = diff as i64;
        self.consumption += row.total_consumption * diff;
        self.windows += diff;
        self.peak_hours[row.peak_hour as usize % 24] += diff;
        if diff > 0 {
            self.name = Some(row.region_name.to_string());
        }
    }

    /// Adds another delta.
    pub fn merge(&mut self, other: RegionDelta) {
        self.consumption += other.consumption;
        self.windows += other.windows;
        for (hour, windows) in other.peak_hours.iter().enumerate() {
            self.peak_hours[hour] += windows;
        }
        if other.name.is_some() {
            self.name = other.name;
        }
    }
}

/// Whether a row of window `window` is among the latest windows when the newest is `newest`.
pub fn is_recent(window: Millis, newest: Millis, length: Millis) -> bool {
    window >= newest - (LATEST_WINDOWS - 1) * length
}

impl LiveDashboard {
    /// An empty view of windows `window` milliseconds long.
    pub fn new(window: Millis) -> LiveDashboard {
        LiveDashboard {
            window,
            ..LiveDashboard::default()
        }
    }

    /// Applies the consolidated changes of completed time `time`, every one of them (as a
    /// single worker would): rows of other tables, and rankings below [`TOP_USERS`], are
    /// ignored. The monitor sends deltas and rows apart; the tests use this.
    #[cfg(test)]
    pub fn apply(&mut self, time: Time, changes: &[(TableRow, isize)]) {
        let mut deltas: BTreeMap<RegionId, RegionDelta> = BTreeMap::new();
        for (row, diff) in changes {
            if let TableRow::Dashboard(dashboard) = row {
                deltas
                    .entry(dashboard.region_id)
                    .or_default()
                    .add(dashboard, *diff);
            }
        }
        self.apply_deltas(deltas);
        self.apply_rows(time, changes);
    }

    /// Adds the region sums' changes of a completed time (from every worker).
    pub fn apply_deltas(&mut self, deltas: impl IntoIterator<Item = (RegionId, RegionDelta)>) {
        for (region_id, delta) in deltas {
            let totals = self.regions.entry(region_id).or_default();
            totals.consumption += delta.consumption;
            totals.windows += delta.windows;
            for (hour, windows) in delta.peak_hours.iter().enumerate() {
                totals.peak_hours[hour] += windows;
            }
            if let Some(name) = delta.name {
                totals.name = name;
            }
            if totals.windows == 0 {
                self.regions.remove(&region_id);
            }
        }
    }

    /// Applies the consolidated row changes of completed time `time` that concern the latest
    /// windows (others may be left out by the sender: they are dropped here anyway), after its
    /// region deltas.
    pub fn apply_rows(&mut self, time: Time, changes: &[(TableRow, isize)]) {
        self.time = Some(self.time.map_or(time, |t| t.max(time)));
        // Retractions first, so a row's new version replaces its old one under the same key.
        for retractions in [true, false] {
            for (row, diff) in changes {
                if (*diff < 0) != retractions {
                    continue;
                }
                match row {
                    TableRow::Dashboard(dashboard) => self.apply_dashboard(dashboard, *diff),
                    TableRow::Ranking(ranking) if ranking.ranking <= TOP_USERS => {
                        self.apply_ranking(ranking, *diff)
                    }
                    _ => {}
                }
            }
        }
        self.trim();
        self.record_share(time);
    }

    /// Keeps the unknown share after `time` in the history, thinned to [`SHARE_HISTORY`].
    fn record_share(&mut self, time: Time) {
        let stride = self.share_stride.max(1);
        if self.times_applied.is_multiple_of(stride) {
            let share = self.unknown_share();
            self.share_history.push((time, share));
            if self.share_history.len() >= SHARE_HISTORY {
                let mut index = 0;
                self.share_history.retain(|_| {
                    index += 1;
                    index % 2 == 1
                });
                self.share_stride = stride * 2;
            }
        }
        self.times_applied += 1;
    }

    fn apply_dashboard(&mut self, row: &Dashboard, diff: isize) {
        if !self.keeps(row.stat_date) {
            return;
        }
        let window = self.rows.entry(row.stat_date).or_default();
        if diff > 0 {
            window.insert(row.region_id, row.clone());
        } else if window.get(&row.region_id) == Some(row) {
            window.remove(&row.region_id);
        }
        if window.is_empty() {
            self.rows.remove(&row.stat_date);
        }
    }

    fn apply_ranking(&mut self, row: &UserRanking, diff: isize) {
        if !self.keeps(row.stat_date) {
            return;
        }
        let window = self.top.entry(row.stat_date).or_default();
        let key = (row.region_id, row.ranking);
        if diff > 0 {
            window.insert(key, row.clone());
        } else if window.get(&key) == Some(row) {
            window.remove(&key);
        }
        if window.is_empty() {
            self.top.remove(&row.stat_date);
        }
    }

    /// The newest window with rows.
    fn newest(&self) -> Option<Millis> {
        self.rows.last_key_value().map(|(&window, _)| window)
    }

    /// Whether rows of `window` are kept: it is one of the latest windows (or newer).
    fn keeps(&self, window: Millis) -> bool {
        self.newest()
            .is_none_or(|newest| is_recent(window, newest, self.window))
    }

    /// Forgets the rows of windows no longer among the latest.
    fn trim(&mut self) {
        let Some(newest) = self.newest() else {
            self.top.clear();
            return;
        };
        let window = self.window;
        self.rows.retain(|&w, _| is_recent(w, newest, window));
        self.top.retain(|&w, _| is_recent(w, newest, window));
    }

    /// The share of all consumption (over every window) booked to unknown users, 0 to 1.
    pub fn unknown_share(&self) -> f64 {
        let total: Cents = self.regions.values().map(|r| r.consumption).sum();
        let unknown = self
            .regions
            .get(&UNKNOWN_REGION_ID)
            .map_or(0, |r| r.consumption);
        if total == 0 {
            0.0
        } else {
            unknown as f64 / total as f64
        }
    }

    /// The view as `/api/dashboard` serves it.
    pub fn view(&self) -> DashboardView {
        let rows = self
            .rows
            .values()
            .rev()
            .flat_map(|window| window.values())
            .map(DashboardRow::of)
            .collect();
        // Each region's top users in the latest window that has a ranking for it.
        let mut top_users: BTreeMap<RegionId, TopUsers> = BTreeMap::new();
        for (&window, rankings) in self.top.iter().rev() {
            for (&(region_id, _), ranking) in rankings {
                let entry = top_users.entry(region_id).or_insert_with(|| TopUsers {
                    region_id,
                    region_name: ranking.region_name.to_string(),
                    stat_date: format_millis(window),
                    users: Vec::new(),
                });
                if entry.stat_date == format_millis(window) {
                    entry.users.push(TopUser {
                        ranking: ranking.ranking,
                        user_id: ranking.user_id,
                        user_name: ranking.user_name.to_string(),
                        total_consumption: format_cents(ranking.total_consumption),
                    });
                }
            }
        }
        let mut peak_hours: Vec<PeakHour> =
            (0..24).map(|hour| PeakHour { hour, windows: 0 }).collect();
        for totals in self.regions.values() {
            for (hour, windows) in totals.peak_hours.iter().enumerate() {
                peak_hours[hour].windows += windows;
            }
        }
        DashboardView {
            time: self.time,
            time_text: self.time.map(|t| format_millis(t as Millis)),
            windows: self.rows.keys().rev().map(|&w| format_millis(w)).collect(),
            rows,
            top_users: top_users.into_values().collect(),
            peak_hours,
            regions: self
                .regions
                .iter()
                .map(|(&region_id, totals)| RegionView {
                    region_id,
                    region_name: totals.name.clone(),
                    total_consumption: format_cents(totals.consumption),
                    windows: totals.windows,
                    peak_hours: totals.peak_hours,
                })
                .collect(),
            unknown_share: self.unknown_share(),
            unknown_share_history: self
                .share_history
                .iter()
                .map(|&(time, share)| SharePoint {
                    time,
                    time_text: format_millis(time as Millis),
                    share,
                })
                .collect(),
        }
    }
}

/// `/api/dashboard`.
#[derive(Clone, Debug, Serialize)]
pub struct DashboardView {
    /// The latest completed logical time the view holds (epoch ms), and as text.
    pub time: Option<Time>,
    pub time_text: Option<String>,
    /// The windows whose rows are shown, newest first.
    pub windows: Vec<String>,
    /// `ads_power_dashboard` rows of those windows, newest window first, by region.
    pub rows: Vec<DashboardRow>,
    /// Per region, the top of its ranking in the latest window that has one.
    pub top_users: Vec<TopUsers>,
    /// Over every window: how many region windows peak in each hour of the day.
    pub peak_hours: Vec<PeakHour>,
    /// Over every window, per region: consumption, windows, windows per peak hour (the heat map).
    pub regions: Vec<RegionView>,
    /// The share of all consumption booked to unknown users (region 0), 0 to 1.
    pub unknown_share: f64,
    /// That share after completed logical times over the whole job, oldest first (at most
    /// 512 points, evenly thinned).
    pub unknown_share_history: Vec<SharePoint>,
}

/// One `ads_power_dashboard` row, in the export's formats.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DashboardRow {
    pub dashboard_id: String,
    pub stat_date: String,
    pub region_id: RegionId,
    pub region_name: String,
    pub total_consumption: String,
    pub total_cost: String,
    pub user_count: i64,
    pub avg_consumption: String,
    pub peak_hour: u32,
    pub peak_consumption: String,
    pub top_user_id: i64,
    pub top_user_name: String,
    pub top_user_consumption: String,
}

impl DashboardRow {
    fn of(row: &Dashboard) -> DashboardRow {
        DashboardRow {
            dashboard_id: dashboard_id(row.region_id, row.stat_date),
            stat_date: format_millis(row.stat_date),
            region_id: row.region_id,
            region_name: row.region_name.to_string(),
            total_consumption: format_cents(row.total_consumption),
            total_cost: format_cents(row.total_cost),
            user_count: row.user_count,
            avg_consumption: format_cents(row.avg_consumption),
            peak_hour: row.peak_hour,
            peak_consumption: format_cents(row.peak_consumption),
            top_user_id: row.top_user_id,
            top_user_name: row.top_user_name.to_string(),
            top_user_consumption: format_cents(row.top_user_consumption),
        }
    }
}

/// The top of one region's ranking.
#[derive(Clone, Debug, Serialize)]
pub struct TopUsers {
    pub region_id: RegionId,
    pub region_name: String,
    pub stat_date: String,
    pub users: Vec<TopUser>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TopUser {
    pub ranking: u64,
    pub user_id: i64,
    pub user_name: String,
    pub total_consumption: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct PeakHour {
    pub hour: u32,
    pub windows: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RegionView {
    pub region_id: RegionId,
    pub region_name: String,
    pub total_consumption: String,
    pub windows: i64,
    pub peak_hours: [i64; 24],
}

#[derive(Clone, Debug, Serialize)]
pub struct SharePoint {
    pub time: Time,
    pub time_text: String,
    pub share: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Millis = 1_000;

    fn dashboard(
        region_id: RegionId,
        stat_date: Millis,
        total: Cents,
        peak_hour: u32,
    ) -> Dashboard {
        Dashboard {
            region_id,
            stat_date,
            region_name: format!("region {region_id}").into(),
            total_consumption: total,
            total_cost: total * 2,
            user_count: 1,
            avg_consumption: total,
            peak_hour,
            peak_consumption: total,
            top_user_id: 7,
            top_user_name: "u7".into(),
            top_user_consumption: total,
        }
    }

    fn ranking(region_id: RegionId, stat_date: Millis, user_id: i64, rank: u64) -> UserRanking {
        UserRanking {
            user_id,
            stat_date,
            user_name: format!("u{user_id}").into(),
            region_id,
            region_name: format!("region {region_id}").into(),
            total_consumption: 100 * user_id,
            total_cost: 0,
            ranking: rank,
        }
    }

    #[test]
    fn a_corrected_row_replaces_its_old_version_and_sums_follow_every_window() {
        let mut live = LiveDashboard::new(5 * SECOND);
        let unknown = dashboard(0, 0, 300, 2);
        live.apply(1, &[(TableRow::Dashboard(unknown.clone()), 1)]);
        assert_eq!(live.unknown_share(), 1.0);
        // The user arrives: its rows move from region 0 to region 4 in the same window.
        let moved = dashboard(4, 0, 300, 3);
        live.apply(
            2,
            &[
                (TableRow::Dashboard(moved.clone()), 1),
                (TableRow::Dashboard(unknown), -1),
            ],
        );
        let view = live.view();
        assert_eq!(view.time, Some(2));
        assert_eq!(view.rows, vec![DashboardRow::of(&moved)]);
        assert_eq!(view.rows[0].dashboard_id, "DASHBOARD_4_19700101000000");
        assert_eq!(live.unknown_share(), 0.0);
        assert_eq!(view.regions.len(), 1, "region 0 has no window left");
        assert_eq!(view.regions[0].peak_hours[3], 1);
        assert_eq!(view.peak_hours[3].windows, 1);
        assert_eq!(view.peak_hours[2].windows, 0);
    }

    #[test]
    fn only_the_latest_windows_keep_rows_but_totals_cover_all() {
        let mut live = LiveDashboard::new(5 * SECOND);
        for w in 0..(LATEST_WINDOWS + 5) {
            live.apply(
                w as Time + 1,
                &[(TableRow::Dashboard(dashboard(1, w * 5 * SECOND, 100, 0)), 1)],
            );
        }
        // A late change of a forgotten window still moves the totals.
        live.apply(100, &[(TableRow::Dashboard(dashboard(0, 0, 100, 0)), 1)]);
        let view = live.view();
        assert_eq!(view.windows.len(), LATEST_WINDOWS as usize);
        assert_eq!(
            view.windows[0],
            format_millis(16 * 5 * SECOND),
            "newest first"
        );
        assert_eq!(view.rows.len(), LATEST_WINDOWS as usize);
        assert!(view.rows.iter().all(|row| row.region_id == 1));
        let total: i64 = view.regions.iter().map(|r| r.windows).sum();
        assert_eq!(total, LATEST_WINDOWS + 6);
        let share = live.unknown_share();
        assert!((share - 1.0 / 18.0).abs() < 1e-12, "{share}");
    }

    #[test]
    fn region_deltas_folded_on_each_worker_add_up_to_the_whole() {
        let rows = [
            (dashboard(1, 0, 100, 3), 1),
            (dashboard(2, 0, 50, 4), 1),
            (dashboard(1, 0, 100, 3), -1),
            (dashboard(1, 0, 170, 5), 1),
        ];
        let mut whole = BTreeMap::<RegionId, RegionDelta>::new();
        let mut parts = [BTreeMap::<RegionId, RegionDelta>::new(), BTreeMap::new()];
        for (index, (row, diff)) in rows.iter().enumerate() {
            whole.entry(row.region_id).or_default().add(row, *diff);
            parts[index % 2]
                .entry(row.region_id)
                .or_default()
                .add(row, *diff);
        }
        let mut merged = BTreeMap::<RegionId, RegionDelta>::new();
        for part in parts {
            for (region, delta) in part {
                merged.entry(region).or_default().merge(delta);
            }
        }
        assert_eq!(merged[&1].consumption, whole[&1].consumption);
        assert_eq!(merged[&1].peak_hours, whole[&1].peak_hours);
        assert_eq!(merged[&1].windows, 1);
        assert_eq!(merged[&1].peak_hours[5], 1);
        assert_eq!(merged[&1].peak_hours[3], 0);
    }

    #[test]
    fn the_share_history_spans_the_whole_job_evenly_thinned() {
        let mut live = LiveDashboard::new(5 * SECOND);
        let times = 3 * SHARE_HISTORY as Time;
        for time in 1..=times {
            // one row of unknown consumption, then known consumption: the share falls
            let region = if time == 1 { 0 } else { 1 };
            let row = dashboard(region, time as Millis * 5 * SECOND, 100, 0);
            live.apply(time, &[(TableRow::Dashboard(row), 1)]);
        }
        let history = live.view().unknown_share_history;
        assert!(history.len() < SHARE_HISTORY && history.len() > SHARE_HISTORY / 4);
        assert_eq!(history[0].time, 1);
        assert_eq!(history[0].share, 1.0);
        assert!(history.last().unwrap().time > times - 8);
        let gaps: std::collections::BTreeSet<Time> =
            history.windows(2).map(|w| w[1].time - w[0].time).collect();
        assert_eq!(gaps.len(), 1, "evenly spaced: {gaps:?}");
        assert!(history.windows(2).all(|w| w[1].share <= w[0].share));
    }

    #[test]
    fn top_users_come_from_each_regions_latest_ranked_window() {
        let mut live = LiveDashboard::new(5 * SECOND);
        live.apply(
            1,
            &[
                (TableRow::Dashboard(dashboard(1, 0, 1, 0)), 1),
                (TableRow::Dashboard(dashboard(1, 5 * SECOND, 1, 0)), 1),
                (TableRow::Dashboard(dashboard(2, 0, 1, 0)), 1),
                (TableRow::Ranking(ranking(1, 0, 9, 1)), 1),
                (TableRow::Ranking(ranking(1, 5 * SECOND, 3, 1)), 1),
                (TableRow::Ranking(ranking(1, 5 * SECOND, 2, 2)), 1),
                (TableRow::Ranking(ranking(2, 0, 8, 1)), 1),
            ],
        );
        // user 2 overtakes user 3 in region 1's latest window
        live.apply(
            2,
            &[
                (TableRow::Ranking(ranking(1, 5 * SECOND, 3, 1)), -1),
                (TableRow::Ranking(ranking(1, 5 * SECOND, 2, 2)), -1),
                (TableRow::Ranking(ranking(1, 5 * SECOND, 2, 1)), 1),
                (TableRow::Ranking(ranking(1, 5 * SECOND, 3, 2)), 1),
            ],
        );
        let view = live.view();
        assert_eq!(view.top_users.len(), 2);
        let region_1 = &view.top_users[0];
        assert_eq!(region_1.stat_date, format_millis(5 * SECOND));
        let users: Vec<(u64, i64)> = region_1
            .users
            .iter()
            .map(|u| (u.ranking, u.user_id))
            .collect();
        assert_eq!(users, vec![(1, 2), (2, 3)]);
        assert_eq!(view.top_users[1].users[0].user_id, 8);
        assert_eq!(view.top_users[1].stat_date, format_millis(0));
    }
}
