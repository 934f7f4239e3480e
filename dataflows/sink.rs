//! Sink: which of the warehouse's tables leave the dataflow, and as what (SPEC §4a, §5).
//!
//! ```sql
//! INSERT INTO dws_region_daily_stats SELECT * FROM dws.region_stats;   -- always
//! INSERT INTO dws_user_ranking       SELECT * FROM dws.user_ranking;   -- always
//! INSERT INTO ads_power_dashboard    SELECT * FROM ads.dashboard;      -- always
//! INSERT INTO ods_power_user, ods_power_consumption, dwd_power_consumption_detail ...;
//!                                   -- when something outside reads them (export, --sink-ods-dwd)
//! ```
//!
//! Under retention a frozen window keeps, in every table outside, the rows it had at the last
//! logical time before it froze: inside the dataflow its rows leave the maintained state, and
//! those retractions stop here. Where the tables go from here — the sinks, the export, the
//! counters and the monitor — is the engine's business (`src/sinks/exits.rs`).

use super::Layers;
use crate::model::rows::{
    window_start, Consumption, Dashboard, Detail, RegionStats, User, UserRanking,
};
use crate::operators::retention::{until_frozen, Retention};
use crate::operators::Table;

/// The warehouse's tables as they leave the dataflow. Under retention a frozen window keeps, in
/// every table, the rows it had at the last logical time before it froze (SPEC §4a): inside the
/// dataflow its rows leave the maintained state, but those retractions stop here.
pub struct Leaving<'scope> {
    /// ODS and DWD, when the DWD layer was built with its detail rows.
    pub ods_and_dwd: Option<OdsAndDwd<'scope>>,
    pub region_stats: Table<'scope, RegionStats>,
    pub rankings: Table<'scope, UserRanking>,
    pub dashboards: Table<'scope, Dashboard>,
}

/// The ODS and DWD tables as they leave the dataflow.
pub struct OdsAndDwd<'scope> {
    pub users: Table<'scope, User>,
    pub consumption: Table<'scope, Consumption>,
    pub details: Table<'scope, Detail>,
}

/// The tables of `layers` as they leave the dataflow under `retention`.
pub fn leaving<'scope>(layers: Layers<'scope>, retention: Retention) -> Leaving<'scope> {
    let window = retention.window;
    let ods = layers.ods;
    let scope = layers.dws.region_stats.inner.scope();
    scope.region_named("sink.until_frozen", |region| Leaving {
        ods_and_dwd: layers
            .dwd
            .details
            .zip(ods.consumption)
            .map(|(details, consumption)| OdsAndDwd {
                users: ods
                    .users
                    .enter_region(region)
                    .as_collection(|_, user| user.clone())
                    .leave_region(scope),
                consumption: until_frozen(consumption.enter_region(region), retention, move |c| {
                    Some(window_start(c.consumption_date, window))
                })
                .leave_region(scope),
                details: until_frozen(details.enter_region(region), retention, move |d| {
                    Some(window_start(d.fact.date, window))
                })
                .leave_region(scope),
            }),
        region_stats: until_frozen(
            layers.dws.region_stats.enter_region(region),
            retention,
            |r| Some(r.stat_date),
        )
        .leave_region(scope),
        rankings: until_frozen(layers.dws.rankings.enter_region(region), retention, |r| {
            Some(r.stat_date)
        })
        .leave_region(scope),
        dashboards: until_frozen(layers.ads.dashboards.enter_region(region), retention, |d| {
            Some(d.stat_date)
        })
        .leave_region(scope),
    })
}
