//! DWD: every consumption row joined with the current row of its user (SPEC §3).
//!
//! ```sql
//! SELECT c.consumption_id, c.user_id,
//!        COALESCE(u.user_name, '未知用户')   AS user_name,
//!        c.consumption_amount, c.consumption_cost, c.consumption_date,
//!        COALESCE(u.region_id, 0)            AS region_id,
//!        COALESCE(u.region_name, '未知地区') AS region_name,
//!        COALESCE(u.usage_type, '未知')      AS usage_type
//! FROM ods_power_consumption AS c
//! LEFT JOIN ods_power_user AS u ON c.user_id = u.user_id;
//! ```
//!
//! Differential has no outer join, so the left join is an inner join against a *total*
//! dimension: the real users' columns, plus the COALESCE defaults for every user id that
//! consumption rows name but no user row has. DWS aggregates each user's rows before it joins
//! them with this dimension (see `dws.rs`), so the detail rows themselves are only built when
//! something reads them (the export, or `--sink-ods-dwd`); when a user row arrives, changes or
//! is deleted, that join retracts and re-emits exactly that user's rows.

use differential_dataflow::operators::ThresholdTotal;

use super::ods::Ods;
use crate::model::rows::{Detail, Dim, Fact, UserId};
use crate::operators::{Indexed, Table};

/// The DWD layer.
pub struct Dwd<'scope> {
    /// The right side of the LEFT JOIN after COALESCE, for every user id that has a user row
    /// or is named by a consumption row.
    pub dims: Indexed<'scope, UserId, Dim>,
    /// `dwd_power_consumption_detail`, if asked for.
    pub details: Option<Table<'scope, Detail>>,
}

/// Builds the DWD layer from the ODS tables; the detail rows only `with_details`.
pub fn dwd<'scope>(ods: &Ods<'scope>, with_details: bool) -> Dwd<'scope> {
    let scope = ods.facts.inner.scope();
    let dims = scope.region_named("dwd.dims", |region| {
        let users = ods.users.clone().enter_region(region);
        let facts = ods.facts.clone().enter_region(region);
        // LEFT JOIN ods_power_user AS u: the user columns after COALESCE ...
        let user_dims = users
            .clone()
            .as_collection(|id, user| (*id, Dim::of(Some(user))));
        // ... and the defaults for user ids that facts name but no user row has.
        let user_ids = users.as_collection(|id, _| *id);
        let missing_dims = facts
            .map(|f| f.user_id)
            .distinct_total()
            .map(|id| (id, ()))
            .antijoin(user_ids)
            .map(|(id, ())| (id, Dim::unknown()));
        user_dims
            .concat(missing_dims)
            .arrange_by_key_named("dwd.dims_by_user")
            .leave_region(scope)
    });

    // FROM ods_power_consumption AS c ... ON c.user_id: the facts, by user id.
    let details = with_details.then(|| {
        scope.region_named("dwd.join_user", |region| {
            let facts: Indexed<'_, UserId, Fact> = ods
                .facts
                .clone()
                .enter_region(region)
                .map(|f| (f.user_id, f))
                .arrange_by_key_named("dwd.facts_by_user");
            let details = facts.join_core(dims.clone().enter_region(region), |_, fact, dim| {
                Some(Detail {
                    fact: *fact,
                    dim: dim.clone(),
                })
            });
            details.leave_region(scope)
        })
    });
    Dwd { dims, details }
}
