//! The warehouse's tables described once: names, columns in the export contract's order with
//! their kinds, keys, and each row's values — so the export and every database backend render
//! their files and SQL from the same description.

use crate::model::rows::Millis;
use crate::model::values::dashboard_id;
use crate::model::TableRow;

/// What a column holds; each backend maps it to its own type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Integer,
    Text,
    /// DECIMAL with two places, carried as its exact text (`12.34`).
    Decimal,
    /// TIMESTAMP(3), carried as `YYYY-MM-DD HH:MM:SS.mmm`.
    Timestamp,
    /// A processing-time TIMESTAMP(3) (`etl_time`, the dashboard's `update_time`): the logical
    /// time of the row's version. Written by the sinks, not part of the export.
    Stamp,
}

/// A table of the warehouse.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    /// The columns in the export's order, processing-time stamps last.
    pub columns: &'static [(&'static str, Kind)],
    /// The primary key's columns, in key order.
    pub key: &'static [&'static str],
    /// Another unique key, if any (column names).
    pub unique: &'static [&'static str],
    /// Whether an insertion may meet a row of its key that it does not retract: a consumption
    /// id that comes back after its row froze under retention brings a new row that replaces
    /// the frozen one outside the dataflow (SPEC §4a), so an insertion is an upsert.
    pub keys_reused: bool,
}

impl Table {
    /// The positions of the key's columns among the columns, in key order.
    pub fn key_positions(&self) -> Vec<usize> {
        self.key
            .iter()
            .map(|key| {
                self.columns
                    .iter()
                    .position(|(name, _)| name == key)
                    .expect("a key column is a column")
            })
            .collect()
    }

    /// The columns of the export file, in order: all but the processing-time stamps.
    pub fn exported_columns(&self) -> impl Iterator<Item = &'static str> {
        self.columns
            .iter()
            .filter(|(_, kind)| *kind != Kind::Stamp)
            .map(|(name, _)| *name)
    }
}

/// A value bound into a statement, borrowed from its row where it can be; decimals and
/// timestamps stay numbers until a backend renders them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Integer(i64),
    Text(&'a str),
    /// Text computed from the row (the dashboard's id).
    OwnedText(String),
    /// A decimal with two places, in hundredths.
    Cents(i64),
    /// A timestamp, in epoch milliseconds.
    Millis(i64),
    Null,
}

use Kind::{Decimal, Integer, Stamp, Text, Timestamp};

pub const ODS_POWER_USER: Table = Table {
    name: "ods_power_user",
    columns: &[
        ("user_id", Integer),
        ("user_name", Text),
        ("usage_type", Text),
        ("region_id", Integer),
        ("region_name", Text),
        ("address", Text),
        ("phone", Text),
        ("create_time", Timestamp),
        ("update_time", Timestamp),
    ],
    key: &["user_id"],
    unique: &[],
    keys_reused: false,
};

pub const ODS_POWER_CONSUMPTION: Table = Table {
    name: "ods_power_consumption",
    columns: &[
        ("consumption_id", Integer),
        ("user_id", Integer),
        ("consumption_amount", Decimal),
        ("consumption_cost", Decimal),
        ("consumption_date", Timestamp),
        ("meter_reading_before", Decimal),
        ("meter_reading_after", Decimal),
        ("remark", Text),
    ],
    key: &["consumption_id"],
    unique: &[],
    keys_reused: true,
};

pub const DWD_POWER_CONSUMPTION_DETAIL: Table = Table {
    name: "dwd_power_consumption_detail",
    columns: &[
        ("consumption_id", Integer),
        ("user_id", Integer),
        ("user_name", Text),
        ("consumption_amount", Decimal),
        ("consumption_cost", Decimal),
        ("consumption_date", Timestamp),
        ("region_id", Integer),
        ("region_name", Text),
        ("usage_type", Text),
        ("etl_time", Stamp),
    ],
    key: &["consumption_id"],
    unique: &[],
    keys_reused: true,
};

pub const DWS_REGION_DAILY_STATS: Table = Table {
    name: "dws_region_daily_stats",
    columns: &[
        ("region_id", Integer),
        ("region_name", Text),
        ("stat_date", Timestamp),
        ("total_consumption", Decimal),
        ("total_cost", Decimal),
        ("user_count", Integer),
        ("avg_consumption", Decimal),
        ("max_consumption", Decimal),
        ("min_consumption", Decimal),
    ],
    key: &["region_id", "stat_date"],
    unique: &[],
    keys_reused: false,
};

pub const DWS_USER_RANKING: Table = Table {
    name: "dws_user_ranking",
    columns: &[
        ("user_id", Integer),
        ("user_name", Text),
        ("region_id", Integer),
        ("region_name", Text),
        ("stat_date", Timestamp),
        ("total_consumption", Decimal),
        ("total_cost", Decimal),
        ("ranking", Integer),
    ],
    key: &["user_id", "stat_date"],
    unique: &[],
    keys_reused: false,
};

pub const ADS_POWER_DASHBOARD: Table = Table {
    name: "ads_power_dashboard",
    columns: &[
        ("dashboard_id", Text),
        ("stat_date", Timestamp),
        ("region_id", Integer),
        ("region_name", Text),
        ("total_consumption", Decimal),
        ("total_cost", Decimal),
        ("user_count", Integer),
        ("avg_consumption", Decimal),
        ("peak_hour", Integer),
        ("peak_consumption", Decimal),
        ("top_user_id", Integer),
        ("top_user_name", Text),
        ("top_user_consumption", Decimal),
        ("update_time", Stamp),
    ],
    key: &["dashboard_id"],
    unique: &["region_id", "stat_date"],
    keys_reused: false,
};

/// Every table a sink may write, in layer order.
pub const ALL: [&Table; 6] = [
    &ODS_POWER_USER,
    &ODS_POWER_CONSUMPTION,
    &DWD_POWER_CONSUMPTION_DETAIL,
    &DWS_REGION_DAILY_STATS,
    &DWS_USER_RANKING,
    &ADS_POWER_DASHBOARD,
];

fn text(value: &str) -> Value<'_> {
    Value::Text(value)
}

fn optional_text(value: &Option<String>) -> Value<'_> {
    value.as_deref().map_or(Value::Null, text)
}

fn cents(value: i64) -> Value<'static> {
    Value::Cents(value)
}

fn time(value: i64) -> Value<'static> {
    Value::Millis(value)
}

fn optional<'a, T: Copy>(value: Option<T>, to: impl Fn(T) -> Value<'a>) -> Value<'a> {
    value.map_or(Value::Null, to)
}

/// The table of `row` and its values in column order; `stamp` (a logical time) fills the
/// processing-time columns. `None` for rows that are not table rows (malformed input).
pub fn table_and_values(row: &TableRow, stamp: Millis) -> Option<(&'static Table, Vec<Value<'_>>)> {
    use Value::Integer as Int;
    let values = match row {
        TableRow::User(u) => (
            &ODS_POWER_USER,
            vec![
                Int(u.user_id),
                optional_text(&u.user_name),
                optional_text(&u.usage_type),
                optional(u.region_id, |r| Int(r.into())),
                optional_text(&u.region_name),
                optional_text(&u.address),
                optional_text(&u.phone),
                optional(u.create_time, time),
                optional(u.update_time, time),
            ],
        ),
        TableRow::Consumption(c) => (
            &ODS_POWER_CONSUMPTION,
            vec![
                Int(c.consumption_id),
                Int(c.user_id),
                cents(c.consumption_amount),
                cents(c.consumption_cost),
                time(c.consumption_date),
                optional(c.meter_reading_before, cents),
                optional(c.meter_reading_after, cents),
                optional_text(&c.remark),
            ],
        ),
        TableRow::Detail(d) => (
            &DWD_POWER_CONSUMPTION_DETAIL,
            vec![
                Int(d.fact.consumption_id),
                Int(d.fact.user_id),
                text(&d.dim.user_name),
                cents(d.fact.amount),
                cents(d.fact.cost),
                time(d.fact.date),
                Int(d.dim.region_id.into()),
                text(&d.dim.region_name),
                text(&d.dim.usage_type),
                time(stamp),
            ],
        ),
        TableRow::RegionStats(s) => (
            &DWS_REGION_DAILY_STATS,
            vec![
                Int(s.region_id.into()),
                text(&s.region_name),
                time(s.stat_date),
                cents(s.total_consumption),
                cents(s.total_cost),
                Int(s.user_count),
                cents(s.avg_consumption),
                cents(s.max_consumption),
                cents(s.min_consumption),
            ],
        ),
        TableRow::Ranking(r) => (
            &DWS_USER_RANKING,
            vec![
                Int(r.user_id),
                text(&r.user_name),
                Int(r.region_id.into()),
                text(&r.region_name),
                time(r.stat_date),
                cents(r.total_consumption),
                cents(r.total_cost),
                Int(r.ranking as i64),
            ],
        ),
        TableRow::Dashboard(d) => (
            &ADS_POWER_DASHBOARD,
            vec![
                Value::OwnedText(dashboard_id(d.region_id, d.stat_date)),
                time(d.stat_date),
                Int(d.region_id.into()),
                text(&d.region_name),
                cents(d.total_consumption),
                cents(d.total_cost),
                Int(d.user_count),
                cents(d.avg_consumption),
                Int(d.peak_hour.into()),
                cents(d.peak_consumption),
                Int(d.top_user_id),
                text(&d.top_user_name),
                cents(d.top_user_consumption),
                time(stamp),
            ],
        ),
        TableRow::Error(_) => return None,
    };
    Some(values)
}

impl Table {
    fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|(name, _)| *name).collect()
    }

    /// `ON CONFLICT (key) DO UPDATE SET …`: a row whose key exists replaces it.
    fn on_conflict_update(&self) -> String {
        let updates: Vec<String> = self
            .column_names()
            .into_iter()
            .filter(|name| !self.key.contains(name))
            .map(|name| format!("{name} = excluded.{name}"))
            .collect();
        format!(
            "ON CONFLICT ({}) DO UPDATE SET {}",
            self.key.join(", "),
            updates.join(", ")
        )
    }

    /// `INSERT …` for one row, with `placeholder(n, kind)` rendering the n-th (1-based)
    /// parameter: it fails on a key the table holds.
    pub fn insert_sql(&self, placeholder: impl Fn(usize, Kind) -> String) -> String {
        let params: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| placeholder(i + 1, *kind))
            .collect();
        format!(
            "INSERT INTO {{table}} ({}) VALUES ({})",
            self.column_names().join(", "),
            params.join(", "),
        )
    }

    /// `INSERT … ON CONFLICT (key) DO UPDATE SET …` for one row.
    pub fn upsert_sql(&self, placeholder: impl Fn(usize, Kind) -> String) -> String {
        format!(
            "{} {}",
            self.insert_sql(placeholder),
            self.on_conflict_update()
        )
    }

    /// Inserts the rows of the staging table `{stage}` (the table's columns plus `gridflow_op`)
    /// whose op is `op`, in key order; with `replace`, a row whose key exists replaces it.
    pub fn insert_from_stage_sql(&self, op: char, replace: bool) -> String {
        let names = self.column_names();
        let columns = names.join(", ");
        format!(
            "INSERT INTO {{table}} ({columns}) SELECT {columns} FROM {{stage}} \
             WHERE gridflow_op = '{op}' ORDER BY {}{}",
            self.key.join(", "),
            if replace {
                format!(" {}", self.on_conflict_update())
            } else {
                String::new()
            }
        )
    }

    /// Deletes the rows whose keys the staging table `{stage}` holds with op `op`.
    pub fn delete_from_stage_sql(&self, op: char) -> String {
        let conditions: Vec<String> = self
            .key
            .iter()
            .map(|name| format!("t.{name} = s.{name}"))
            .collect();
        format!(
            "DELETE FROM {{table}} AS t USING {{stage}} AS s WHERE s.gridflow_op = '{op}' AND {}",
            conditions.join(" AND ")
        )
    }

    /// `DELETE … WHERE key = …` for one key, its columns bound in key order.
    pub fn delete_sql(&self, placeholder: impl Fn(usize, Kind) -> String) -> String {
        let conditions: Vec<String> = self
            .key_positions()
            .into_iter()
            .enumerate()
            .map(|(i, position)| {
                let (name, kind) = self.columns[position];
                format!("{name} = {}", placeholder(i + 1, kind))
            })
            .collect();
        format!("DELETE FROM {{table}} WHERE {}", conditions.join(" AND "))
    }

    /// `CREATE TABLE IF NOT EXISTS`, with `column_type(kind)` naming each column's type.
    pub fn create_sql(&self, column_type: impl Fn(Kind) -> &'static str) -> String {
        let mut parts: Vec<String> = self
            .columns
            .iter()
            .map(|(name, kind)| format!("{name} {}", column_type(*kind)))
            .collect();
        parts.push(format!("PRIMARY KEY ({})", self.key.join(", ")));
        if !self.unique.is_empty() {
            parts.push(format!("UNIQUE ({})", self.unique.join(", ")));
        }
        format!(
            "CREATE TABLE IF NOT EXISTS {{table}} ({})",
            parts.join(", ")
        )
    }
}
