//! The warehouse, layer by layer, in the order of the source document: ODS → DWD → DWS → ADS
//! → sink. Each layer opens with the SQL it maintains and follows it clause by clause; every
//! table is a differential collection, so each one is, at every logical time, exactly what its
//! SQL would return over the input seen so far.

pub mod ads;
pub mod dwd;
pub mod dws;
pub mod ods;
pub mod sink;

use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::trace::implementations::ValSpine;

use crate::source::Time;

/// A collection of the warehouse: rows of `D` at logical times, with multiplicities.
pub type Table<'scope, D> = differential_dataflow::VecCollection<'scope, Time, D, isize>;

/// An arrangement of the warehouse: rows of `V` indexed by `K`.
pub type Indexed<'scope, K, V> = differential_dataflow::operators::arrange::Arranged<
    'scope,
    TraceAgent<ValSpine<K, V, Time, isize>>,
>;

/// All four layers of the warehouse.
pub struct Layers<'scope> {
    pub ods: ods::Ods<'scope>,
    pub dwd: dwd::Dwd<'scope>,
    pub dws: dws::Dws<'scope>,
    pub ads: ads::Ads<'scope>,
}

/// Builds the warehouse from the sources' upsert streams, with the windows and retention of
/// `retention`; `on_counts` is told of consumption rows expired on arrival and of the number of
/// consumption rows the maintained state holds. The whole ODS
/// consumption rows and the DWD detail rows are built only `with_details`.
pub fn warehouse<'scope>(
    users: ods::UpsertStream<'scope, crate::rows::UserId, crate::rows::User>,
    consumption: ods::UpsertStream<'scope, crate::rows::ConsumptionId, crate::rows::Consumption>,
    retention: crate::retention::Retention,
    on_counts: impl Fn(crate::upsert::StateCounts) + 'static,
    with_details: bool,
) -> Layers<'scope> {
    let ods = ods::ods(users, consumption, retention, on_counts, with_details);
    let dwd = dwd::dwd(&ods, with_details);
    let dws = dws::dws(&ods, &dwd, retention.window);
    let ads = ads::ads(&dws);
    Layers { ods, dwd, dws, ads }
}
