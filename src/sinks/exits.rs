//! Where the warehouse's tables go when they leave the dataflow: the one place that says which
//! table feeds which exit.
//!
//! | leaves                        | counted as               | probed | monitor | handoff |
//! |-------------------------------|--------------------------|--------|---------|---------|
//! | `ods_power_user`              |                          |        | (users) | ODS/DWD |
//! | `ods_power_consumption`       | late rows (its dates)    |        |         | ODS/DWD |
//! | `dwd_power_consumption_detail`| `dwd_updates`            | yes    |         | ODS/DWD |
//! | `dws_region_daily_stats`      | `dws_region_updates`, corrections | yes |     | always  |
//! | `dws_user_ranking`            | `dws_ranking_updates`    | yes    | yes     | always  |
//! | `ads_power_dashboard`         | `ads_updates`            | yes    | yes     | always  |
//! | the DWS partition members     |                          |        | yes     |         |
//! | malformed input rows          |                          |        |         | always  |
//!
//! "ODS/DWD": only when the job's shape says those tables leave (the export, `--sink-ods-dwd`,
//! verify); the DWD detail rows are not even built otherwise. The probe is what latency and the
//! simulated clock's back-pressure watch; the monitor is the web UI's ([`crate::ui::exits`]);
//! the handoff gathers the changes on worker 0 for the sinks ([`super::handoff`]).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use timely::dataflow::operators::Enter;
use timely::dataflow::ProbeHandle;

use super::handoff::{hand_off, Marks};
use super::{ChangeSink, SinkError};
use crate::dataflows::sink::leaving;
use crate::dataflows::Layers;
use crate::metrics::Metrics;
use crate::model::{RowError, TableRow, Time};
use crate::operators::late::count_late_rows;
use crate::operators::retention::Retention;
use crate::operators::Table;
use crate::ui::exits::Watched;
use crate::ui::Monitor;

/// The exits a worker's dataflow has.
pub struct Exits<'scope, S, F> {
    pub metrics: Arc<Metrics>,
    pub probe: ProbeHandle<Time>,
    /// The web UI's monitor, when the job has one; its shared views only on the worker that
    /// keeps them (worker 0 of the UI's process).
    pub monitor: Option<Monitor>,
    /// The handoff to the sinks, when anything outside wants the changes.
    pub handoff: Option<Handoff<'scope, S, F>>,
}

/// The handoff to the sinks: the sink on worker 0 (`None` elsewhere), the durability marks it
/// waits for in a durable job, and what to do when it fails.
pub struct Handoff<'scope, S, F> {
    pub sink: Option<Rc<RefCell<S>>>,
    pub marks: Option<Marks<'scope>>,
    pub on_failure: F,
}

/// Routes the tables of `layers`, under `retention`, and the malformed input rows `errors` to
/// `exits`.
pub fn route<'scope, S, F>(
    layers: Layers<'scope>,
    errors: Table<'scope, RowError>,
    retention: Retention,
    exits: Exits<'scope, S, F>,
) where
    S: ChangeSink + 'static,
    F: FnMut(SinkError) + 'static,
{
    let Exits {
        metrics: m,
        probe,
        monitor,
        handoff,
    } = exits;
    let scope = layers.ods.facts.inner.scope();
    scope.region_named("ods.late_rows", |region| {
        let late = m.clone();
        let dates = layers
            .ods
            .facts
            .clone()
            .enter_region(region)
            .map(|f| f.date);
        count_late_rows(dates, move |rows| Metrics::add(&late.late_rows, rows));
    });
    let users = layers.ods.users.clone();
    let members = layers.dws.members.clone();
    let tables = leaving(layers, retention);

    let (region_stats, rankings, dashboards, ods_and_dwd) =
        scope.region_named("sink.counters", |region| {
            let region_stats = tables.region_stats.enter_region(region);
            let region_stats = count(region_stats, &m, |m| &m.dws_region_updates);
            let region_stats = count_corrections(region_stats, &m).probe_with(&probe);
            let rankings = tables.rankings.enter_region(region);
            let rankings = count(rankings, &m, |m| &m.dws_ranking_updates).probe_with(&probe);
            let dashboards = tables.dashboards.enter_region(region);
            let dashboards = count(dashboards, &m, |m| &m.ads_updates).probe_with(&probe);
            m.dwd_built
                .store(tables.ods_and_dwd.is_some(), Ordering::Relaxed);
            let ods_and_dwd = tables.ods_and_dwd.map(|mut tables| {
                let details = tables.details.enter_region(region);
                let details = count(details, &m, |m| &m.dwd_updates).probe_with(&probe);
                tables.details = details.leave_region(scope);
                tables
            });
            (
                region_stats.leave_region(scope),
                rankings.leave_region(scope),
                dashboards.leave_region(scope),
                ods_and_dwd,
            )
        });
    if let Some(monitor) = monitor {
        let watched = Watched {
            users,
            members,
            rankings: rankings.clone(),
            dashboards: dashboards.clone(),
        };
        crate::ui::exits::monitor(watched, retention.window, monitor, m.clone());
    }

    let Some(handoff) = handoff else {
        return;
    };
    scope.region_named("sink.changes", |region| {
        let mut rows: Vec<Table<'_, TableRow>> = vec![
            errors.enter_region(region).map(TableRow::Error),
            region_stats.enter_region(region).map(TableRow::RegionStats),
            rankings.enter_region(region).map(TableRow::Ranking),
            dashboards.enter_region(region).map(TableRow::Dashboard),
        ];
        if let Some(tables) = ods_and_dwd {
            rows.push(tables.users.enter_region(region).map(TableRow::User));
            rows.push(
                tables
                    .consumption
                    .enter_region(region)
                    .map(TableRow::Consumption),
            );
            rows.push(tables.details.enter_region(region).map(TableRow::Detail));
        }
        let rows = differential_dataflow::collection::concatenate(region, rows);
        let marks = handoff
            .marks
            .map(|(marks, peers)| (marks.enter(region), peers));
        hand_off(rows, marks, handoff.sink, handoff.on_failure);
    });
}

/// Counts every update of `table` into one of the counters.
fn count<'scope, D: differential_dataflow::Data>(
    table: Table<'scope, D>,
    metrics: &Arc<Metrics>,
    counter: fn(&Metrics) -> &AtomicU64,
) -> Table<'scope, D> {
    let metrics = metrics.clone();
    table.inspect_batch(move |_, updates| {
        let count: isize = updates.iter().map(|(_, _, diff)| diff.abs()).sum();
        Metrics::add(counter(&metrics), count as u64);
    })
}

/// Counts retractions of region window rows: versions corrected after they were emitted.
fn count_corrections<'scope, D: differential_dataflow::Data>(
    table: Table<'scope, D>,
    metrics: &Arc<Metrics>,
) -> Table<'scope, D> {
    let metrics = metrics.clone();
    table.inspect_batch(move |_, updates| {
        let retracted: isize = updates
            .iter()
            .filter(|(_, _, diff)| *diff < 0)
            .map(|(_, _, diff)| -diff)
            .sum();
        Metrics::add(&metrics.corrected_window_rows, retracted as u64);
    })
}
