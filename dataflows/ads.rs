//! ADS: the dashboard, one row per region and window (SPEC §3).
//!
//! ```sql
//! SELECT 'DASHBOARD_' || r.region_id || '_' || to_char(r.stat_date, 'YYYYMMDDHH24MISS') AS dashboard_id,
//!        r.stat_date, r.region_id, r.region_name, r.total_consumption, r.total_cost,
//!        r.user_count, r.avg_consumption,
//!        p.peak_hour,
//!        r.max_consumption      AS peak_consumption,
//!        t.user_id              AS top_user_id,
//!        t.user_name            AS top_user_name,
//!        t.total_consumption    AS top_user_consumption,
//!        <logical time>         AS update_time
//! FROM dws_region_daily_stats r
//! JOIN (... peak hour per region and window ...) p ON (region_id, stat_date)
//! JOIN dws_user_ranking t ON t.region_id = r.region_id AND t.stat_date = r.stat_date AND t.ranking = 1;
//! ```
//!
//! DWS computes the region row, its peak hour and its rank-1 user in the same partition (they
//! share the key `(region_id, stat_date)`), so both joins are already done: each dashboard row
//! is a map of one region row. `dashboard_id` is derived from the key where rows leave the
//! dataflow, and `update_time` is stamped there from the logical time.

use super::dws::Dws;
use crate::model::rows::Dashboard;
use crate::operators::Table;

/// The ADS layer.
pub struct Ads<'scope> {
    /// `ads_power_dashboard`.
    pub dashboards: Table<'scope, Dashboard>,
}

/// Builds `ads_power_dashboard` from the DWS region rows and their rank-1 users.
pub fn ads<'scope>(dws: &Dws<'scope>) -> Ads<'scope> {
    let scope = dws.regions.inner.scope();
    let dashboards = scope.region_named("ads.dashboard", |region| {
        let dashboards = dws
            .regions
            .clone()
            .enter_region(region)
            .map(|(r, top)| Dashboard {
                region_id: r.region_id,
                stat_date: r.stat_date,
                region_name: r.region_name,
                total_consumption: r.total_consumption,
                total_cost: r.total_cost,
                user_count: r.user_count,
                avg_consumption: r.avg_consumption,
                peak_hour: r.peak_hour,
                peak_consumption: r.max_consumption,
                top_user_id: top.user_id,
                top_user_name: top.user_name,
                top_user_consumption: top.total_consumption,
            });
        dashboards.leave_region(scope)
    });
    Ads { dashboards }
}
