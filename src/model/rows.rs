//! The rows of every warehouse table, as they travel inside the dataflow.
//!
//! Money and kWh are `i64` hundredths ([`Cents`]) and timestamps are `i64` epoch milliseconds
//! ([`Millis`], UTC, no time zone): both are exact, cheap to compare and hash, and serialize
//! with any serde format timely uses between processes. Conversion to `rust_decimal` and
//! `chrono` happens only at the edges ([`crate::model::values`]).
//!
//! Field order matters: the derived `Ord` sorts each output row by its table's primary key,
//! which is the order the export contract writes them in.

use serde::{Deserialize, Serialize};

/// Text copied into many rows (names, regions, usage types): shared, so copying a row copies a
/// pointer, not the characters.
pub type Text = std::sync::Arc<str>;

/// A DECIMAL(10,2) value in hundredths: `123.45` is `12345`.
pub type Cents = i64;
/// A TIMESTAMP(3) value in milliseconds since 1970-01-01T00:00:00 (treated as UTC).
pub type Millis = i64;
/// The key of `power_user`.
pub type UserId = i64;
/// The key of `power_consumption`.
pub type ConsumptionId = i64;
/// A region id; 0 is the "unknown region" the left join defaults to.
pub type RegionId = i32;

/// The defaults of the DWD left join (SPEC §3) for a consumption row without a user.
pub const UNKNOWN_USER_NAME: &str = "未知用户";
/// `COALESCE(u.region_id, 0)`.
pub const UNKNOWN_REGION_ID: RegionId = 0;
/// `COALESCE(u.region_name, '未知地区')`.
pub const UNKNOWN_REGION_NAME: &str = "未知地区";
/// `COALESCE(u.usage_type, '未知')`.
pub const UNKNOWN_USAGE_TYPE: &str = "未知";

/// One row of `ods_power_user` (key `user_id`). Every other column may be NULL.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct User {
    pub user_id: UserId,
    pub user_name: Option<String>,
    pub usage_type: Option<String>,
    pub region_id: Option<RegionId>,
    pub region_name: Option<String>,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub create_time: Option<Millis>,
    pub update_time: Option<Millis>,
}

/// One row of `ods_power_consumption` (key `consumption_id`).
///
/// `user_id`, the amount, the cost and the event time are required: a row without them has no
/// window and no meaning in any aggregate, so the sources report it as malformed
/// (`docs/semantics.md`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Consumption {
    pub consumption_id: ConsumptionId,
    pub user_id: UserId,
    pub consumption_amount: Cents,
    pub consumption_cost: Cents,
    pub consumption_date: Millis,
    pub meter_reading_before: Option<Cents>,
    pub meter_reading_after: Option<Cents>,
    pub remark: Option<String>,
}

/// The columns of a user row that the DWD join copies, after its COALESCE defaults.
///
/// A consumption row whose user does not exist joins with [`Dim::unknown`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dim {
    pub user_name: Text,
    pub region_id: RegionId,
    pub region_name: Text,
    pub usage_type: Text,
}

impl Dim {
    /// The COALESCE defaults of SPEC §3, applied column by column to a (possibly absent) user.
    pub fn of(user: Option<&User>) -> Dim {
        Dim {
            user_name: Text::from(
                user.and_then(|u| u.user_name.as_deref())
                    .unwrap_or(UNKNOWN_USER_NAME),
            ),
            region_id: user.and_then(|u| u.region_id).unwrap_or(UNKNOWN_REGION_ID),
            region_name: Text::from(
                user.and_then(|u| u.region_name.as_deref())
                    .unwrap_or(UNKNOWN_REGION_NAME),
            ),
            usage_type: Text::from(
                user.and_then(|u| u.usage_type.as_deref())
                    .unwrap_or(UNKNOWN_USAGE_TYPE),
            ),
        }
    }

    /// The dimension of a consumption row whose user does not exist.
    pub fn unknown() -> Dim {
        Dim::of(None)
    }
}

/// The fields of a consumption row that the DWD and later layers read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Fact {
    pub consumption_id: ConsumptionId,
    pub user_id: UserId,
    pub amount: Cents,
    pub cost: Cents,
    pub date: Millis,
}

impl From<&Consumption> for Fact {
    fn from(c: &Consumption) -> Fact {
        Fact {
            consumption_id: c.consumption_id,
            user_id: c.user_id,
            amount: c.consumption_amount,
            cost: c.consumption_cost,
            date: c.consumption_date,
        }
    }
}

/// One row of `dwd_power_consumption_detail` (key `consumption_id`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Detail {
    pub fact: Fact,
    pub dim: Dim,
}

/// One user's consumption rows in one window and one hour of the day, summed: everything DWS
/// reads of them. Aggregating each user's rows before the user join means a user row that
/// changes moves one partial per window and hour, not every consumption row of the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Partial {
    pub total_consumption: Cents,
    pub total_cost: Cents,
    /// How many rows; never 0 (a group without rows has no partial).
    pub count: i64,
    pub max_consumption: Cents,
    pub min_consumption: Cents,
}

/// One user's partial of one hour in a partition, with the user's current columns.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    pub user_id: UserId,
    pub hour: u32,
    pub user_name: Text,
    pub region_name: Text,
    pub partial: Partial,
}

/// One row of `dws_region_daily_stats` (key `region_id, stat_date`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RegionStats {
    pub region_id: RegionId,
    pub stat_date: Millis,
    pub region_name: Text,
    pub total_consumption: Cents,
    pub total_cost: Cents,
    pub user_count: i64,
    pub avg_consumption: Cents,
    pub max_consumption: Cents,
    pub min_consumption: Cents,
    /// Not a column of this table: the hour the dashboard reports as `peak_hour`, computed
    /// here because it needs the same rows (SPEC §3, `ads_power_dashboard`).
    pub peak_hour: u32,
}

/// One row of `dws_user_ranking` (key `user_id, stat_date`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UserRanking {
    pub user_id: UserId,
    pub stat_date: Millis,
    pub user_name: Text,
    pub region_id: RegionId,
    pub region_name: Text,
    pub total_consumption: Cents,
    pub total_cost: Cents,
    pub ranking: u64,
}

/// One row of `ads_power_dashboard` (key `dashboard_id`, derived from `region_id, stat_date`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dashboard {
    pub region_id: RegionId,
    pub stat_date: Millis,
    pub region_name: Text,
    pub total_consumption: Cents,
    pub total_cost: Cents,
    pub user_count: i64,
    pub avg_consumption: Cents,
    pub peak_hour: u32,
    pub peak_consumption: Cents,
    pub top_user_id: UserId,
    pub top_user_name: Text,
    pub top_user_consumption: Cents,
}

/// The start of the tumbling window of `size` milliseconds that contains `date`, with windows
/// aligned to 1970-01-01T00:00:00 UTC (SPEC §3). Correct for dates before 1970 too.
pub fn window_start(date: Millis, size: Millis) -> Millis {
    if planted!(WindowBoundary) {
        let date = date - 1;
        return date - date.rem_euclid(size);
    }
    date - date.rem_euclid(size)
}

/// The hour of the day (0..=23, UTC) of a timestamp: `EXTRACT(HOUR FROM consumption_date)`.
pub fn hour_of_day(date: Millis) -> u32 {
    date.div_euclid(3_600_000).rem_euclid(24) as u32
}

/// `ROUND(sum / count, 2)` on hundredths: the exact quotient rounded half away from zero.
pub fn average_cents(sum: Cents, count: i64) -> Cents {
    assert!(count > 0, "an average over no rows");
    let (sum, count) = (sum as i128, count as i128);
    let rounded = (2 * sum.abs() + count) / (2 * count);
    (sum.signum() * rounded) as Cents
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_align_to_the_epoch_and_handle_negative_times() {
        assert_eq!(window_start(12_345, 5_000), 10_000);
        assert_eq!(window_start(10_000, 5_000), 10_000);
        assert_eq!(window_start(-1, 5_000), -5_000);
    }

    #[test]
    fn averages_round_half_away_from_zero() {
        assert_eq!(average_cents(5, 2), 3); // 0.025 -> 0.03
        assert_eq!(average_cents(-5, 2), -3);
        assert_eq!(average_cents(10, 3), 3); // 0.0333 -> 0.03
        assert_eq!(average_cents(20, 3), 7); // 0.0666 -> 0.07
    }

    #[test]
    fn hours_are_utc_hours_of_day() {
        assert_eq!(hour_of_day(0), 0);
        assert_eq!(hour_of_day(3_600_000 * 25 + 1), 1);
        assert_eq!(hour_of_day(-1), 23);
    }

    #[test]
    fn a_user_with_null_columns_gets_the_defaults_column_by_column() {
        let user = User {
            user_id: 1,
            user_name: Some("a".into()),
            usage_type: None,
            region_id: None,
            region_name: Some("r".into()),
            address: None,
            phone: None,
            create_time: None,
            update_time: None,
        };
        let dim = Dim::of(Some(&user));
        assert_eq!(&*dim.user_name, "a");
        assert_eq!(dim.region_id, UNKNOWN_REGION_ID);
        assert_eq!(&*dim.region_name, "r");
        assert_eq!(&*dim.usage_type, UNKNOWN_USAGE_TYPE);
    }
}
