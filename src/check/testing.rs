//! Row builders for tests, here so the unit tests and the integration tests share one copy: an
//! ODS row from the few columns a test cares about, the rest left NULL.

use crate::model::rows::{Cents, Consumption, ConsumptionId, Millis, RegionId, User, UserId};

/// A resident user (`usage_type` 居民) named `name` in region `region_id`.
pub fn user(user_id: UserId, name: &str, region_id: RegionId, region_name: &str) -> User {
    User {
        user_id,
        user_name: Some(name.into()),
        usage_type: Some("居民".into()),
        region_id: Some(region_id),
        region_name: Some(region_name.into()),
        address: None,
        phone: None,
        create_time: None,
        update_time: None,
    }
}

/// A meter reading of `amount` hundredths of a kWh at `date`, costing twice that.
pub fn reading(id: ConsumptionId, user_id: UserId, amount: Cents, date: Millis) -> Consumption {
    Consumption {
        consumption_id: id,
        user_id,
        consumption_amount: amount,
        consumption_cost: amount * 2,
        consumption_date: date,
        meter_reading_before: None,
        meter_reading_after: None,
        remark: None,
    }
}
