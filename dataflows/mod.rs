//! The warehouse, layer by layer, in the order of the source document: ODS → DWD → DWS → ADS
//! → sink. Each layer opens with the SQL it maintains and follows it clause by clause; every
//! table is a differential collection, so each one is, at every logical time, exactly what its
//! SQL would return over the input seen so far.
//!
//! May use: the model (rows, values, time) and the operators, nothing else of the engine; a
//! test (`tests/architecture.rs`) holds it to that. Where the tables go once they leave — the
//! sinks, the counters, the UI — is the engine's business (`src/sinks/exits.rs`).

pub mod ads;
pub mod dwd;
pub mod dws;
pub mod ods;
pub mod sink;

use crate::model::rows::{Consumption, ConsumptionId, User, UserId};
use crate::operators::retention::Retention;
use crate::operators::upsert::StateCounts;
use ods::UpsertStream;

/// All four layers of the warehouse.
pub struct Layers<'scope> {
    pub ods: ods::Ods<'scope>,
    pub dwd: dwd::Dwd<'scope>,
    pub dws: dws::Dws<'scope>,
    pub ads: ads::Ads<'scope>,
}

/// Builds the warehouse from the sources' upsert streams, with the windows and retention of
/// `retention`; `on_counts` is told of consumption rows expired on arrival and of the number of
/// consumption rows the maintained state holds. The whole ODS consumption rows and the DWD
/// detail rows are built only `with_details`.
pub fn warehouse<'scope>(
    users: UpsertStream<'scope, UserId, User>,
    consumption: UpsertStream<'scope, ConsumptionId, Consumption>,
    retention: Retention,
    on_counts: impl Fn(StateCounts) + 'static,
    with_details: bool,
) -> Layers<'scope> {
    let ods = ods::ods(users, consumption, retention, on_counts, with_details);
    let dwd = dwd::dwd(&ods, with_details);
    let dws = dws::dws(&ods, &dwd, retention.window);
    let ads = ads::ads(&dws);
    Layers { ods, dwd, dws, ads }
}
