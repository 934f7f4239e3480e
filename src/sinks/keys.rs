//! Which table a row belongs to and its key there, and which rows a database sink writes.

use crate::model::rows::{Millis, RegionId, UserId};
use crate::model::TableRow;

/// The table of a row and its key there: two rows with the same `RowKey` are versions of one
/// table row. Ordered by table in layer order, then key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RowKey {
    User(UserId),
    Consumption(i64),
    Detail(i64),
    RegionStats(RegionId, Millis),
    Ranking(UserId, Millis),
    /// The dashboard's id is made of its region and window ([`crate::sinks::export::dashboard_id`]).
    Dashboard(RegionId, Millis),
    /// Malformed input rows, which no database table holds.
    Error,
}

/// The table and key of `row`.
pub fn key_of(row: &TableRow) -> RowKey {
    match row {
        TableRow::User(u) => RowKey::User(u.user_id),
        TableRow::Consumption(c) => RowKey::Consumption(c.consumption_id),
        TableRow::Detail(d) => RowKey::Detail(d.fact.consumption_id),
        TableRow::RegionStats(s) => RowKey::RegionStats(s.region_id, s.stat_date),
        TableRow::Ranking(r) => RowKey::Ranking(r.user_id, r.stat_date),
        TableRow::Dashboard(d) => RowKey::Dashboard(d.region_id, d.stat_date),
        TableRow::Error(_) => RowKey::Error,
    }
}

/// Whether a database sink writes `row`: DWS and ADS always, ODS and DWD when asked, malformed
/// input rows never (they are not table rows).
pub fn is_sunk(row: &TableRow, ods_and_dwd: bool) -> bool {
    match row {
        TableRow::RegionStats(_) | TableRow::Ranking(_) | TableRow::Dashboard(_) => true,
        TableRow::User(_) | TableRow::Consumption(_) | TableRow::Detail(_) => ods_and_dwd,
        TableRow::Error(_) => false,
    }
}
