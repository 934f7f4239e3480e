//! ODS: the two source tables as primary-key (upsert) tables, as in Fluss (SPEC §1).
//!
//! ```sql
//! CREATE TABLE ods_power_user        (user_id BIGINT, ..., PRIMARY KEY (user_id) NOT ENFORCED);
//! CREATE TABLE ods_power_consumption (consumption_id BIGINT, ..., PRIMARY KEY (consumption_id) NOT ENFORCED);
//! INSERT INTO ods_power_user        SELECT * FROM power_user_source;
//! INSERT INTO ods_power_consumption SELECT * FROM power_consumption_source;
//! ```
//!
//! A later row with the same key replaces the earlier one and a tombstone (`None`) deletes it.
//! Users never expire (their ids are a bounded range), so differential's upsert arrangement
//! keeps them. Consumption rows leave the maintained state when their window freezes under
//! retention (SPEC §4a): [`upsert_with_expiry`] keeps each row until then, and rows arriving for
//! a frozen window are expired, counted and not applied.
//!
//! Each table is built in a region of the dataflow named after it, as is every role of every
//! layer (`dwd.join_user`, `dws.partitions`, …): the job's graph shows the warehouse in the
//! source's words.

use timely::dataflow::operators::vec::Map;
use timely::dataflow::operators::Enter;
use timely::dataflow::StreamVec;

use differential_dataflow::operators::arrange::upsert::arrange_from_upsert;
use differential_dataflow::trace::implementations::{ValBuilder, ValSpine};

use crate::model::rows::{Consumption, ConsumptionId, Fact, User, UserId};
use crate::model::Time;
use crate::operators::retention::Retention;
use crate::operators::upsert::{upsert_with_expiry, StateCounts};
use crate::operators::{Indexed, Table};

/// A stream of upserts as the sources send them: key, new row or `None`, logical time.
pub type UpsertStream<'scope, K, R> = StreamVec<'scope, Time, (K, Option<R>, Time)>;

/// The ODS layer: the current row of every key of both source tables.
pub struct Ods<'scope> {
    /// `ods_power_user`, by `user_id`.
    pub users: Indexed<'scope, UserId, User>,
    /// `ods_power_consumption`: the rows of live windows, when they are to leave the dataflow.
    pub consumption: Option<Table<'scope, Consumption>>,
    /// The columns of `ods_power_consumption` that later layers read. Unless the whole rows
    /// leave the dataflow, the maintained state holds only these (no strings, a third of the
    /// size), and they copy without touching the heap wherever several layers read them.
    pub facts: Table<'scope, Fact>,
}

/// Builds the ODS tables from the sources' upsert streams; `on_counts` is told how many
/// consumption rows were expired on arrival and how many the maintained state holds. The whole consumption rows are kept only `with_rows`.
pub fn ods<'scope>(
    users: UpsertStream<'scope, UserId, User>,
    consumption: UpsertStream<'scope, ConsumptionId, Consumption>,
    retention: Retention,
    on_counts: impl Fn(StateCounts) + 'static,
    with_rows: bool,
) -> Ods<'scope> {
    let scope = users.scope();
    let users = scope.region_named("ods.power_user", |region| {
        arrange_from_upsert::<ValBuilder<_, _, _, _>, ValSpine<_, _, _, _>, _, _>(
            users.enter(region),
            "ods.power_user",
        )
        .leave_region(scope)
    });
    scope.region_named("ods.power_consumption", |region| {
        let consumption = consumption.enter(region);
        if with_rows {
            let consumption = upsert_with_expiry(
                consumption,
                "ods.power_consumption",
                move |row: &Consumption| retention.freezes_at_date(row.consumption_date),
                on_counts,
            );
            Ods {
                users,
                facts: consumption
                    .clone()
                    .map(|c| Fact::from(&c))
                    .leave_region(scope),
                consumption: Some(consumption.leave_region(scope)),
            }
        } else {
            let facts = consumption.map(|(id, row, time)| (id, row.as_ref().map(Fact::from), time));
            let facts = upsert_with_expiry(
                facts,
                "ods.power_consumption",
                move |fact: &Fact| retention.freezes_at_date(fact.date),
                on_counts,
            );
            Ods {
                users,
                facts: facts.leave_region(scope),
                consumption: None,
            }
        }
    })
}
