//! The four business queries of source section 7: their parameters, their result's columns and
//! kinds, and the canonical text of each kind of cell (as the export writes it).

use chrono::{NaiveDate, NaiveDateTime};
use clap::ValueEnum;
use rust_decimal::Decimal;

/// One of the four business queries of source section 7.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BusinessQuery {
    /// 7.1: dashboard windows above a consumption threshold, the largest first.
    LoadMonitoring,
    /// 7.2: the top users of each region and window.
    TopUsers,
    /// 7.3: region windows per peak hour on one day, with their peak consumption.
    PeakHours,
    /// 7.4: users per region window over the last hour, with the growth against the previous.
    UserGrowth,
}

/// What a result column holds, for formatting it the same way from either database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    Text,
    Integer,
    /// An exact decimal, shown with two places.
    Decimal,
    /// A timestamp, shown as `YYYY-MM-DD HH:MM:SS.mmm`.
    Timestamp,
}

/// The parameters the queries take; each query reads its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryOptions {
    /// load-monitoring: the alert threshold in kWh.
    pub threshold: Decimal,
    /// top-users: how many ranks per region and window.
    pub top: i64,
    /// peak-hours: the day; `None` is the newest day in the table.
    pub date: Option<NaiveDate>,
    /// user-growth: where the range starts; `None` is one hour before the newest window.
    pub since: Option<NaiveDateTime>,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            threshold: Decimal::from(50_000),
            top: 10,
            date: None,
            since: None,
        }
    }
}

/// A parameter of a query, bound as `$1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parameter {
    Decimal(Decimal),
    Integer(i64),
    Date(Option<NaiveDate>),
    Timestamp(Option<NaiveDateTime>),
}

/// A query's result: its columns and rows of formatted cells (`None` for NULL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultTable {
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// Why a query could not run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    Config(String),
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgresql: {0}")]
    Postgres(String),
    #[error(transparent)]
    Connect(#[from] crate::sinks::SinkError),
    #[error("column {column} holds {value:?}, which is not a {kind:?}")]
    Cell {
        column: &'static str,
        value: String,
        kind: CellKind,
    },
}

impl From<::postgres::Error> for QueryError {
    /// The server's message, with a hint where the sink's tables are missing.
    fn from(error: ::postgres::Error) -> Self {
        let mut message = crate::sinks::describe(&error);
        if error.code() == Some(&::postgres::error::SqlState::UNDEFINED_TABLE) {
            message.push_str(
                " (the tables are created by `gridflow run` with the same --sink and --sink-schema)",
            );
        }
        QueryError::Postgres(message)
    }
}

use CellKind::{Decimal as Dec, Integer as Int, Text, Timestamp as Ts};

impl BusinessQuery {
    /// The PostgreSQL text of the query (`docs/queries/NAME.sql`).
    pub fn postgres_sql(self) -> &'static str {
        match self {
            BusinessQuery::LoadMonitoring => include_str!("../../docs/queries/load-monitoring.sql"),
            BusinessQuery::TopUsers => include_str!("../../docs/queries/top-users.sql"),
            BusinessQuery::PeakHours => include_str!("../../docs/queries/peak-hours.sql"),
            BusinessQuery::UserGrowth => include_str!("../../docs/queries/user-growth.sql"),
        }
    }

    /// The SQLite text of the query (`docs/queries/sqlite/NAME.sql` where the dialect differs).
    pub fn sqlite_sql(self) -> &'static str {
        match self {
            BusinessQuery::LoadMonitoring => {
                include_str!("../../docs/queries/sqlite/load-monitoring.sql")
            }
            BusinessQuery::TopUsers => self.postgres_sql(),
            BusinessQuery::PeakHours => include_str!("../../docs/queries/sqlite/peak-hours.sql"),
            BusinessQuery::UserGrowth => include_str!("../../docs/queries/sqlite/user-growth.sql"),
        }
    }

    /// The result's columns, in the order the SQL selects them.
    pub fn columns(self) -> &'static [(&'static str, CellKind)] {
        match self {
            BusinessQuery::LoadMonitoring => &[
                ("region_name", Text),
                ("stat_date", Ts),
                ("total_consumption", Dec),
                ("peak_hour", Int),
                ("update_time", Ts),
            ],
            BusinessQuery::TopUsers => &[
                ("region_name", Text),
                ("stat_date", Ts),
                ("ranking", Int),
                ("user_name", Text),
                ("total_consumption", Dec),
                ("total_cost", Dec),
            ],
            BusinessQuery::PeakHours => &[
                ("hour", Int),
                ("region_count", Int),
                ("total_peak_cons", Dec),
            ],
            BusinessQuery::UserGrowth => &[
                ("region_name", Text),
                ("stat_date", Ts),
                ("user_count", Int),
                ("prev_user_count", Int),
                ("growth_rate", Dec),
            ],
        }
    }

    /// The value bound to `$1`.
    pub fn parameter(self, options: &QueryOptions) -> Parameter {
        match self {
            BusinessQuery::LoadMonitoring => Parameter::Decimal(options.threshold),
            BusinessQuery::TopUsers => Parameter::Integer(options.top),
            BusinessQuery::PeakHours => Parameter::Date(options.date),
            BusinessQuery::UserGrowth => Parameter::Timestamp(options.since),
        }
    }
}

/// The export's timestamp format.
pub(super) const TIMESTAMP_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.3f";

/// A decimal with two places, rounded half away from zero.
pub(super) fn format_decimal(value: Decimal) -> String {
    let mut rounded =
        value.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    rounded.rescale(2);
    rounded.to_string()
}

pub(super) fn format_timestamp(value: NaiveDateTime) -> String {
    value.format(TIMESTAMP_FORMAT).to_string()
}

/// A cell the database returned as text, in the canonical form of its kind.
pub(super) fn normalize_text(
    column: &'static str,
    kind: CellKind,
    value: &str,
) -> Result<String, QueryError> {
    let bad = || QueryError::Cell {
        column,
        value: value.to_string(),
        kind,
    };
    Ok(match kind {
        CellKind::Text => value.to_string(),
        CellKind::Integer => value.parse::<i64>().map_err(|_| bad())?.to_string(),
        CellKind::Decimal => format_decimal(value.parse::<Decimal>().map_err(|_| bad())?),
        CellKind::Timestamp => format_timestamp(
            NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S%.f").map_err(|_| bad())?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_take_the_export_form() {
        assert_eq!(
            normalize_text("x", CellKind::Decimal, "12.5").unwrap(),
            "12.50"
        );
        assert_eq!(
            normalize_text("x", CellKind::Decimal, "-0.125").unwrap(),
            "-0.13"
        );
        assert_eq!(
            normalize_text("x", CellKind::Timestamp, "2024-01-01 00:00:05").unwrap(),
            "2024-01-01 00:00:05.000"
        );
        assert!(normalize_text("x", CellKind::Integer, "1.5").is_err());
    }
}
