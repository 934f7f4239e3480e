//! DWS: tumbling-window aggregates per region and per user, and the user ranking (SPEC §3).
//!
//! ```sql
//! -- dws_region_daily_stats (key region_id, stat_date)
//! SELECT region_id, MAX(region_name) AS region_name,
//!        TUMBLE_START(consumption_date, :window)   AS stat_date,
//!        SUM(consumption_amount)                   AS total_consumption,
//!        SUM(consumption_cost)                     AS total_cost,
//!        COUNT(DISTINCT user_id)                   AS user_count,
//!        ROUND(SUM(consumption_amount) / COUNT(*), 2) AS avg_consumption,
//!        MAX(consumption_amount)                   AS max_consumption,
//!        MIN(consumption_amount)                   AS min_consumption
//! FROM dwd_power_consumption_detail
//! GROUP BY region_id, TUMBLE(consumption_date, :window);
//!
//! -- dws_user_ranking (key user_id, stat_date)
//! SELECT user_id, user_name, region_id, region_name, stat_date, total_consumption, total_cost,
//!        ROW_NUMBER() OVER (PARTITION BY stat_date, region_id
//!                           ORDER BY total_consumption DESC, user_id ASC) AS ranking
//! FROM (SELECT user_id, user_name, region_id, region_name,
//!              TUMBLE_START(consumption_date, :window) AS stat_date,
//!              SUM(consumption_amount) AS total_consumption, SUM(consumption_cost) AS total_cost
//!       FROM dwd_power_consumption_detail
//!       GROUP BY user_id, user_name, region_id, region_name, TUMBLE(consumption_date, :window));
//! ```
//!
//! The source groups by `region_name` too; the table's key is `(region_id, stat_date)`, so the
//! name is the group's greatest (the same name whenever the input is consistent; see
//! `docs/semantics.md`). The dashboard's `peak_hour` — the hour of the window's rows with the
//! largest summed amount — needs the same rows, so it is computed here alongside.
//!
//! The ranking is aggregated in two levels, per user and then per partition, so a late row
//! touches one user's sums and then only the ranking rows whose rank really changes.

use std::cmp::Reverse;

use super::dwd::Dwd;
use super::Table;
use crate::rows::{
    average_cents, hour_of_day, window_start, Cents, Millis, RegionId, RegionStats, Text, UserId,
    UserRanking,
};

/// The DWS layer.
pub struct Dws<'scope> {
    /// `dws_region_daily_stats`, with the dashboard's peak hour.
    pub region_stats: Table<'scope, RegionStats>,
    /// `dws_user_ranking`.
    pub rankings: Table<'scope, UserRanking>,
}

/// Builds both DWS tables from DWD with tumbling windows of `window` milliseconds.
pub fn dws<'scope>(dwd: &Dwd<'scope>, window: Millis) -> Dws<'scope> {
    Dws {
        region_stats: region_daily_stats(dwd, window),
        rankings: user_ranking(dwd, window),
    }
}

/// One DWD row as the region aggregate reads it: amount, user, cost, hour, region name.
type RegionInput = (Cents, UserId, Cents, u32, Text);

fn region_daily_stats<'scope>(dwd: &Dwd<'scope>, window: Millis) -> Table<'scope, RegionStats> {
    dwd.details
        .clone()
        // GROUP BY region_id, TUMBLE(consumption_date, :window)
        .map(move |d| {
            let group = (d.dim.region_id, window_start(d.fact.date, window));
            let input: RegionInput = (
                d.fact.amount,
                d.fact.user_id,
                d.fact.cost,
                hour_of_day(d.fact.date),
                d.dim.region_name,
            );
            (group, input)
        })
        .reduce_named(
            "dws.region_daily_stats",
            |&(region_id, stat_date), rows, output| {
                output.push((aggregate_region(region_id, stat_date, rows), 1));
            },
        )
        .map(|(_, stats)| stats)
}

/// The aggregates of one (region, window) group. `rows` come sorted by amount, each with its
/// multiplicity.
fn aggregate_region(
    region_id: RegionId,
    stat_date: Millis,
    rows: &[(&RegionInput, isize)],
) -> RegionStats {
    let mut total_consumption = 0;
    let mut total_cost = 0;
    let mut count = 0;
    let mut users = Vec::with_capacity(rows.len());
    // The summed amount of each hour that has rows; hours without rows cannot be the peak.
    let mut hourly: [Option<Cents>; 24] = [None; 24];
    let mut region_name = &rows[0].0 .4;
    for &(&(amount, user_id, cost, hour, ref name), multiplicity) in rows {
        let multiplicity = multiplicity as i64;
        total_consumption += amount * multiplicity;
        total_cost += cost * multiplicity;
        count += multiplicity;
        users.push(user_id);
        *hourly[hour as usize].get_or_insert(0) += amount * multiplicity;
        region_name = region_name.max(name);
    }
    users.sort_unstable();
    users.dedup();
    // Ties go to the earliest hour: compare by (sum, Reverse(hour)).
    let peak_hour = (0..24u32)
        .filter_map(|hour| hourly[hour as usize].map(|sum| (sum, Reverse(hour))))
        .max()
        .map_or(0, |(_, Reverse(hour))| hour);
    RegionStats {
        region_id,
        stat_date,
        region_name: region_name.clone(),
        total_consumption,
        total_cost,
        user_count: users.len() as i64,
        avg_consumption: average_cents(total_consumption, count),
        max_consumption: rows[rows.len() - 1].0 .0,
        min_consumption: rows[0].0 .0,
        peak_hour,
    }
}

/// A user's columns and sums in one window, as the ranking partition reads them.
type UserTotals = (Text, RegionId, Text, Cents, Cents);

fn user_ranking<'scope>(dwd: &Dwd<'scope>, window: Millis) -> Table<'scope, UserRanking> {
    // The inner query: one row per user and window. All of a user's rows carry the same user
    // columns (they joined the same current user row), so grouping by user_id suffices.
    let per_user = dwd
        .details
        .clone()
        .map(move |d| {
            let group = (d.fact.user_id, window_start(d.fact.date, window));
            (
                (group),
                (
                    d.dim.user_name,
                    d.dim.region_id,
                    d.dim.region_name,
                    d.fact.amount,
                    d.fact.cost,
                ),
            )
        })
        .reduce_named("dws.user_window_totals", |_, rows, output| {
            let (name, region_id, region_name, _, _) = rows[0].0;
            let mut total_consumption = 0;
            let mut total_cost = 0;
            for &(&(_, _, _, amount, cost), multiplicity) in rows {
                total_consumption += amount * multiplicity as i64;
                total_cost += cost * multiplicity as i64;
            }
            let totals: UserTotals = (
                name.clone(),
                *region_id,
                region_name.clone(),
                total_consumption,
                total_cost,
            );
            output.push((totals, 1));
        });

    // ROW_NUMBER() OVER (PARTITION BY stat_date, region_id ORDER BY total DESC, user_id ASC):
    // the partition's rows arrive sorted by (Reverse(total), user_id), which is that order.
    per_user
        .map(
            |((user_id, stat_date), (name, region_id, region_name, total, cost))| {
                (
                    (stat_date, region_id),
                    (Reverse(total), user_id, name, region_name, cost),
                )
            },
        )
        .reduce_named(
            "dws.user_ranking",
            |&(stat_date, region_id), rows, output| {
                for (position, (row, _)) in rows.iter().enumerate() {
                    let (Reverse(total_consumption), user_id, name, region_name, total_cost) = row;
                    let ranking = UserRanking {
                        user_id: *user_id,
                        stat_date,
                        user_name: name.clone(),
                        region_id,
                        region_name: region_name.clone(),
                        total_consumption: *total_consumption,
                        total_cost: *total_cost,
                        ranking: position as u64 + 1,
                    };
                    output.push((ranking, 1));
                }
            },
        )
        .map(|(_, ranking)| ranking)
}
