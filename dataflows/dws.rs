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
//! Both tables group rows of one window by columns that come from the user (region, names), so
//! the aggregation is pushed below the DWD join, in two steps:
//!
//! 1. **Partials, before the join**: each user's rows are summed per window and hour of the day
//!    ([`Partial`]: sums, count, max, min). A change reads the rows of one user in one
//!    window-hour — a handful — and a user row that changes later moves one partial per window
//!    and hour instead of every consumption row of that user. Like the partitions below, this
//!    is a [`reduce_in_time_order`], which stores its input once and no output.
//! 2. **Partitions, after the join**: the partials, joined with the users' current columns,
//!    are grouped by `(stat_date, region_id)` — the key of the region row *and* the partition of
//!    the ranking. One reduce reads the partition's users once and emits the region row
//!    (sums, `COUNT(DISTINCT user_id)`, max, min, the peak hour from the hourly sums, the
//!    greatest region name), the rank-1 user the dashboard needs, and the ranking rows, and only
//!    the output rows that changed leave it, so a late row re-ranks only the users it moves. It
//!    is [`reduce_in_time_order`]: our times are totally ordered, so it keeps each partition's
//!    members and recomputes the rows before and after a change instead of storing every
//!    ranking row in an output arrangement (a sixth less memory per row, measured).
//!
//! The ranking itself must read the whole partition on every change (a ROW_NUMBER), so the
//! region aggregates riding on the same read cost nothing extra, and sharing the reduce spares
//! the arrangement and the join that separate abelian sums would need to meet the ranking again
//! in ADS (`docs/architecture.md`).

use std::cmp::Reverse;

use super::dwd::Dwd;
use super::ods::Ods;
use timely::dataflow::operators::vec::Partition;
use timely::dataflow::operators::{Enter, Leave};

use differential_dataflow::AsCollection;

use crate::model::rows::{
    average_cents, hour_of_day, window_start, Cents, Member, Millis, Partial, RegionId,
    RegionStats, Text, UserId, UserRanking,
};
use crate::operators::reduce::reduce_in_time_order;
use crate::operators::Table;

/// The rank-1 user of a region window, as the dashboard shows it.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct TopUser {
    pub user_id: UserId,
    pub user_name: Text,
    pub total_consumption: Cents,
}

/// What the partition reduce emits for one `(stat_date, region_id)`.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum PartitionRow {
    /// The `dws_region_daily_stats` row and the partition's rank-1 user.
    Region(RegionStats, TopUser),
    /// A `dws_user_ranking` row.
    Ranking(UserRanking),
}

/// The DWS layer.
pub struct Dws<'scope> {
    /// Every region row with its rank-1 user: what the dashboard shows.
    pub regions: Table<'scope, (RegionStats, TopUser)>,
    /// `dws_region_daily_stats`, with the dashboard's peak hour.
    pub region_stats: Table<'scope, RegionStats>,
    /// `dws_user_ranking`.
    pub rankings: Table<'scope, UserRanking>,
    /// The partials joined with their users' columns, by partition: what the monitor's
    /// corrections read (`src/ui/corrections.rs`).
    pub members: Table<'scope, ((Millis, RegionId), Member)>,
}

/// Builds both DWS tables with tumbling windows of `window` milliseconds.
pub fn dws<'scope>(ods: &Ods<'scope>, dwd: &Dwd<'scope>, window: Millis) -> Dws<'scope> {
    let scope = ods.facts.inner.scope();
    // GROUP BY user_id, TUMBLE(consumption_date, :window), and the hour for the peak hour.
    let partials = scope.region_named("dws.user_partials", |region| {
        let rows = ods.facts.clone().enter_region(region).map(move |f| {
            let group = (f.user_id, window_start(f.date, window), hour_of_day(f.date));
            (group, (f.amount, f.cost))
        });
        let partials = reduce_in_time_order(rows, "dws.user_partials", |group, rows, output| {
            output.push((*group, partial_of(rows)));
        });
        partials.leave_region(scope)
    });

    // JOIN the users' current columns, then PARTITION BY stat_date, region_id.
    let members = scope.region_named("dws.join_user", |region| {
        let members = partials
            .enter_region(region)
            .map(|((user_id, stat_date, hour), partial)| (user_id, (stat_date, hour, partial)))
            .arrange_by_key_named("dws.partials_by_user")
            .join_core(
                dwd.dims.clone().enter_region(region),
                |&user_id, &(stat_date, hour, partial), dim| {
                    let member = Member {
                        user_id,
                        hour,
                        user_name: dim.user_name.clone(),
                        region_name: dim.region_name.clone(),
                        partial,
                    };
                    Some(((stat_date, dim.region_id), member))
                },
            );
        members.leave_region(scope)
    });
    let (regions, rankings) = scope.region_named("dws.partitions", |region| {
        let partitions = reduce_in_time_order(
            members.clone().enter_region(region),
            "dws.partitions",
            |&(stat_date, region_id), members, output| {
                output.extend(partition_rows(stat_date, region_id, members));
            },
        );
        // Region rows to one stream, ranking rows to another, each moved, not copied.
        let mut parts = partitions.inner.partition(2, |(row, time, diff)| {
            let part = match row {
                PartitionRow::Region(..) => 0,
                PartitionRow::Ranking(_) => 1,
            };
            (part, (row, time, diff))
        });
        let rankings = parts.pop().expect("two parts").leave(scope);
        let regions = parts.pop().expect("two parts").leave(scope);
        (regions, rankings)
    });
    let rankings = scope.region_named("dws.user_ranking", |region| {
        let rankings = rankings
            .enter(region)
            .as_collection()
            .flat_map(|row| match row {
                PartitionRow::Ranking(ranking) => Some(ranking),
                PartitionRow::Region(..) => None,
            });
        rankings.leave_region(scope)
    });
    let (regions, region_stats) = scope.region_named("dws.region_stats", |region| {
        let regions = regions
            .enter(region)
            .as_collection()
            .flat_map(|row| match row {
                PartitionRow::Region(stats, top) => Some((stats, top)),
                PartitionRow::Ranking(_) => None,
            });
        let region_stats = regions.clone().map(|(stats, _)| stats);
        (
            regions.leave_region(scope),
            region_stats.leave_region(scope),
        )
    });
    Dws {
        region_stats,
        regions,
        rankings,
        members,
    }
}

/// The partial of one user, window and hour from its rows' (amount, cost), sorted, each with
/// its multiplicity.
fn partial_of(rows: &[((Cents, Cents), isize)]) -> Partial {
    let mut partial = Partial {
        total_consumption: 0,
        total_cost: 0,
        count: 0,
        max_consumption: rows[rows.len() - 1].0 .0,
        min_consumption: rows[0].0 .0,
    };
    for &((amount, cost), multiplicity) in rows {
        let multiplicity = multiplicity as i64;
        partial.total_consumption += amount * multiplicity;
        partial.total_cost += cost * multiplicity;
        partial.count += multiplicity;
    }
    partial
}

/// A user's sums over the hours of one window.
struct UserTotals<'a> {
    user_id: UserId,
    user_name: &'a Text,
    region_name: &'a Text,
    total_consumption: Cents,
    total_cost: Cents,
}

/// The region row, top user and ranking rows of one partition, from its members sorted by user.
fn partition_rows(
    stat_date: Millis,
    region_id: RegionId,
    members: &[(Member, isize)],
) -> Vec<PartitionRow> {
    let first = &members[0].0;
    let mut total_consumption = 0;
    let mut total_cost = 0;
    let mut count = 0;
    let mut max_consumption = first.partial.max_consumption;
    let mut min_consumption = first.partial.min_consumption;
    let mut region_name = &first.region_name;
    // The summed amount of each hour that has rows; hours without rows cannot be the peak.
    let mut hourly: [Option<Cents>; 24] = [None; 24];
    let mut users: Vec<UserTotals<'_>> = Vec::new();
    for (member, _) in members {
        let partial = &member.partial;
        total_consumption += partial.total_consumption;
        total_cost += partial.total_cost;
        count += if planted!(PartialCount) {
            1
        } else {
            partial.count
        };
        max_consumption = max_consumption.max(partial.max_consumption);
        min_consumption = min_consumption.min(partial.min_consumption);
        region_name = region_name.max(&member.region_name);
        *hourly[member.hour as usize].get_or_insert(0) += partial.total_consumption;
        // Members come sorted by user id: a user's hours are adjacent.
        match users.last_mut() {
            Some(user) if user.user_id == member.user_id => {
                user.total_consumption += partial.total_consumption;
                user.total_cost += partial.total_cost;
            }
            _ => users.push(UserTotals {
                user_id: member.user_id,
                user_name: &member.user_name,
                region_name: &member.region_name,
                total_consumption: partial.total_consumption,
                total_cost: partial.total_cost,
            }),
        }
    }
    // Ties go to the earliest hour: compare by (sum, Reverse(hour)).
    let peak_hour = (0..24u32)
        .filter_map(|hour| hourly[hour as usize].map(|sum| (sum, Reverse(hour))))
        .max()
        .map_or(0, |(_, Reverse(hour))| hour);
    // ROW_NUMBER() ... ORDER BY total_consumption DESC, user_id ASC.
    users.sort_by_key(|user| (Reverse(user.total_consumption), user.user_id));
    let stats = RegionStats {
        region_id,
        stat_date,
        region_name: region_name.clone(),
        total_consumption,
        total_cost,
        user_count: users.len() as i64,
        avg_consumption: average_cents(total_consumption, count),
        max_consumption,
        min_consumption,
        peak_hour,
    };
    let top = TopUser {
        user_id: users[0].user_id,
        user_name: users[0].user_name.clone(),
        total_consumption: users[0].total_consumption,
    };
    let mut rows = Vec::with_capacity(users.len() + 1);
    rows.push(PartitionRow::Region(stats, top));
    rows.extend(users.iter().enumerate().map(|(position, user)| {
        PartitionRow::Ranking(UserRanking {
            user_id: user.user_id,
            stat_date,
            user_name: user.user_name.clone(),
            region_id,
            region_name: user.region_name.clone(),
            total_consumption: user.total_consumption,
            total_cost: user.total_cost,
            ranking: position as u64 + 1,
        })
    }));
    rows
}
